"""The ACI format: manifests and their validation, image IDs, streaming reading, reproducible writing, safe extraction."""

from registry.aci.compression import BZIP2, COMPRESSIONS, GZIP, NONE, XZ
from registry.aci.errors import ACIError, ArchiveError, ManifestError
from registry.aci.extract import extract_aci
from registry.aci.isolators import check_isolator_value
from registry.aci.manifest import (
    APPC_VERSION,
    MAX_MANIFEST_DEPTH,
    MAX_MANIFEST_SIZE,
    ImageManifest,
    check_json_shape,
    decode_json,
)
from registry.aci.names import (
    MAX_NAME_LENGTH,
    VALID_OS_ARCH,
    check_hostable,
    check_image_name,
    check_version,
    parse_quantity,
)
from registry.aci.parts import (
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
from registry.aci.paths import MAX_NAME_BYTES, MAX_PATH_BYTES, TreeRules, check_length, normalize
from registry.aci.pod import (
    ExposedPort,
    Mount,
    PodManifest,
    RuntimeApp,
    RuntimeImage,
    Volume,
)
from registry.aci.reader import (
    DEFAULT_MAX_RATIO,
    DEFAULT_MAX_UNCOMPRESSED,
    ACIInfo,
    Limits,
    image_id_of,
    read_aci,
    short_id,
    stream_archive,
)
from registry.aci.tarstream import TarEntry
from registry.aci.writer import ACIWriter, header_from, write_aci

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
