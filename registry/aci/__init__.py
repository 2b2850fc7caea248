"""The ACI format: manifests and their validation, image IDs, streaming reading, reproducible writing, safe extraction."""

from __future__ import annotations

from registry.lazy import lazy_exports

# Not typing's: importing typing costs ~10 ms (re, enum, collections), a twentieth of the
# image ID of a 128 MiB ACI; type checkers take a module-level `TYPE_CHECKING = False` as theirs.
TYPE_CHECKING = False

# Public name -> the submodule defining it, loaded on first use. `pyrkt run` of a stored image
# needs names, manifests and pod manifests, not the reader, writer, extractor or the bz2/lzma
# modules behind them; importing them all cost a third of its start-up. Importing a submodule
# directly (`from registry.aci.manifest import ImageManifest`) loads only what that one uses.
_EXPORTS: dict[str, str] = {
    "BZIP2": "compression", "COMPRESSIONS": "compression", "GZIP": "compression",
    "NONE": "compression", "XZ": "compression",
    "ACIError": "errors", "ArchiveError": "errors", "ManifestError": "errors",
    "extract_aci": "extract",
    "check_isolator_value": "isolators",
    "APPC_VERSION": "manifest", "MAX_MANIFEST_DEPTH": "manifest", "MAX_MANIFEST_SIZE": "manifest",
    "ImageManifest": "manifest", "check_json_shape": "manifest", "decode_json": "manifest",
    "MAX_NAME_LENGTH": "names", "VALID_OS_ARCH": "names", "check_hostable": "names",
    "check_image_name": "names", "check_version": "names", "parse_quantity": "names",
    "Annotation": "parts", "App": "parts", "Dependency": "parts", "EnvironmentVariable": "parts",
    "EventHandler": "parts", "Isolator": "parts", "Label": "parts", "MountPoint": "parts",
    "Port": "parts",
    "MAX_NAME_BYTES": "paths", "MAX_PATH_BYTES": "paths", "TreeRules": "paths",
    "check_length": "paths", "normalize": "paths",
    "ExposedPort": "pod", "Mount": "pod", "PodManifest": "pod", "RuntimeApp": "pod",
    "RuntimeImage": "pod", "Volume": "pod",
    "DEFAULT_MAX_RATIO": "reader", "DEFAULT_MAX_UNCOMPRESSED": "reader", "ACIInfo": "info",
    "Limits": "reader", "image_id_of": "reader", "read_aci": "reader", "short_id": "reader",
    "stream_archive": "reader",
    "TarEntry": "tarstream",
    "ACIWriter": "writer", "header_from": "writer", "write_aci": "writer",
}

__all__ = [
    "ACIError", "ArchiveError", "ManifestError",
    "ImageManifest", "PodManifest", "APPC_VERSION",
    "Label", "App", "Isolator", "Port", "MountPoint", "EnvironmentVariable", "Dependency",
    "Annotation", "EventHandler",
    "RuntimeApp", "RuntimeImage", "Volume", "Mount", "ExposedPort",
    "ACIInfo", "read_aci", "image_id_of", "short_id", "write_aci", "extract_aci", "ACIWriter",
    "header_from",    "stream_archive", "Limits", "TarEntry", "TreeRules", "normalize", "check_length",
    "MAX_NAME_BYTES", "MAX_PATH_BYTES",
    "DEFAULT_MAX_RATIO", "DEFAULT_MAX_UNCOMPRESSED", "MAX_MANIFEST_SIZE", "MAX_MANIFEST_DEPTH",
    "check_json_shape", "decode_json",
    "GZIP", "BZIP2", "XZ", "NONE", "COMPRESSIONS", "VALID_OS_ARCH",
    "parse_quantity", "check_isolator_value", "check_image_name", "check_version",
    "check_hostable", "MAX_NAME_LENGTH",
]


__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS, globals())


if TYPE_CHECKING:  # type checkers and IDEs see the names statically
    from .compression import BZIP2, COMPRESSIONS, GZIP, NONE, XZ
    from .errors import ACIError, ArchiveError, ManifestError
    from .extract import extract_aci
    from .info import ACIInfo
    from .isolators import check_isolator_value
    from .manifest import (
        APPC_VERSION,
        MAX_MANIFEST_DEPTH,
        MAX_MANIFEST_SIZE,
        ImageManifest,
        check_json_shape,
        decode_json,
    )
    from .names import (
        MAX_NAME_LENGTH,
        VALID_OS_ARCH,
        check_hostable,
        check_image_name,
        check_version,
        parse_quantity,
    )
    from .parts import (
        Annotation,
        App,
        Dependency,
        EnvironmentVariable,
        EventHandler,
        Isolator,
        Label,
        MountPoint,
        Port,
    )
    from .paths import MAX_NAME_BYTES, MAX_PATH_BYTES, TreeRules, check_length, normalize
    from .pod import (
        ExposedPort,
        Mount,
        PodManifest,
        RuntimeApp,
        RuntimeImage,
        Volume,
    )
    from .reader import (
        DEFAULT_MAX_RATIO,
        DEFAULT_MAX_UNCOMPRESSED,
        Limits,
        image_id_of,
        read_aci,
        short_id,
        stream_archive,
    )
    from .tarstream import TarEntry
    from .writer import ACIWriter, header_from, write_aci
