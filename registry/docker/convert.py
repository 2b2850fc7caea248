"""docker2aci: turn a Docker/OCI image (archive, layout or registry) into one or more ACIs."""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from registry.aci import COMPRESSIONS, ACIWriter
from registry.docker.archive import open_local_image
from registry.docker.errors import DockerError
from registry.docker.image import SourceImage
from registry.docker.manifest import layer_id, layer_manifest, squashed_manifest, validated_json
from registry.docker.reference import output_filename, parse_reference
from registry.docker.squash import Attempts, OnePassRefused, emit_layer, plan, squash
from registry.progress import Progress


@dataclass(frozen=True)
class ConvertedImage:
    path: Path
    image_id: str
    manifest: dict[str, Any]


@dataclass
class ConvertOptions:
    squash: bool = True
    compression: str = "gzip"
    insecure: bool = False  # plain HTTP and unverified TLS for any registry
    insecure_allow_http: bool = False  # docker2aci's -insecure-allow-http
    insecure_skip_verify: bool = False  # docker2aci's -insecure-skip-verify
    debug: Callable[[str], None] | None = None  # -debug: progress lines (on stderr)
    image: str | None = None  # which image of a multi-image archive or layout
    docker_config: Path | None = None  # defaults to $DOCKER_CONFIG or ~/.docker/config.json
    ca_bundle: str | None = None  # PEM CA certificates trusted for registries over HTTPS
    progress: Progress | None = None  # registry.progress: one task per layer download


@contextlib.contextmanager
def open_source(source: str, options: ConvertOptions) -> Iterator[SourceImage]:
    """A `docker://` reference goes to its registry; anything else is a local path."""
    if source.startswith("docker://"):
        # Function-local: requests (~0.1 s of imports) only when a registry is reached.
        from registry.docker.distribution import pull_image

        with pull_image(parse_reference(source), insecure=options.insecure,
                        docker_config=options.docker_config, ca_bundle=options.ca_bundle,
                        progress=options.progress, allow_http=options.insecure_allow_http,
                        skip_verify=options.insecure_skip_verify) as image:
            yield image
    else:
        with open_local_image(Path(source), image=options.image) as image:
            yield image


def convert(source: str, output_dir: Path | str = ".", options: ConvertOptions | None = None
            ) -> list[ConvertedImage]:
    """Convert `source`; write the ACI(s) into `output_dir` and return them (top image last).

    Nothing is left behind on failure: every ACI is written to a temporary file first and
    renamed only when complete; with --nosquash, earlier layers' ACIs are removed again when a
    later one fails.
    """
    options = options or ConvertOptions()
    if options.compression not in COMPRESSIONS:
        raise DockerError(f"unknown compression {options.compression!r} "
                          f"(one of {', '.join(COMPRESSIONS)})", reason="bad-reference")
    out = Path(output_dir)
    debug = options.debug or (lambda message: None)
    if out.exists() and not out.is_dir():
        raise DockerError(f"output directory {out} is not a directory", reason="output")
    debug("Getting image info...")
    with open_source(source, options) as image:
        if not image.layers:
            raise DockerError("the image has no layers", reason="bad-manifest")
        try:
            out.mkdir(parents=True, exist_ok=True)  # -o DIR: made when missing
        except OSError as err:
            raise DockerError(f"cannot create output directory {out}: {err.strerror or err}",
                              reason="output") from None
        if options.squash:
            debug("Squashing layers...")
            return [convert_squashed(image, out / output_filename(image.ref), options.compression)]
        debug("Generating layer ACIs...")
        return convert_layers(image, out, options.compression)


def convert_squashed(image: SourceImage, path: Path, compression: str = "gzip", *,
                     name: str | None = None) -> ConvertedImage:
    """One ACI holding every layer merged, whiteouts applied, written to `path` atomically.

    `name` replaces the appc name docker2aci derives from the reference (the registry names a
    converted tag after its repository exactly; the derived name would turn `_` into `-`).
    """
    if not image.layers:
        raise DockerError("the image has no layers", reason="bad-manifest")
    manifest = squashed_manifest(image)
    if name is not None:
        manifest["name"] = name
    manifest_json = validated_json(manifest)
    attempts = Attempts()
    while True:
        try:
            with ACIWriter(path, compression) as writer:
                writer.add_manifest(manifest_json)
                squash(image.layers, writer, attempts)
                image_id = writer.commit()
            return ConvertedImage(path, image_id, manifest)
        except OnePassRefused:
            # Rare (a duplicate path, or a hard link to a hidden target, in one layer): the
            # partial file is gone with its writer; the next attempt writes that layer by the
            # plan this one made (at most three attempts, see squash.Attempts).
            continue


def layer_filename(image: SourceImage, index: int, out: Path) -> Path:
    """Where docker2aci v0.17.2 wrote a --nosquash layer (internal.generateACIPath).

    Archives (its v1 path): `REPOSITORY-TAG-OS-ARCH-N.aci`, `/` in the repository as `-`, N
    counting from the top layer (0). Registries and OCI images (its v2.2 path):
    `REGISTRY/REPOSITORY-DIGEST-TAG-OS-ARCH.aci` (the digest with its `:`), in subdirectories,
    as docker2aci made them. OS and architecture are the image's (docker2aci took the
    converting host's, which is the same for the images it could run).
    """
    ref = image.ref
    os_name = str(image.config.get("os") or "linux")
    arch = str(image.config.get("architecture") or "amd64")
    tail = "".join(f"-{part}" for part in (ref.tag, os_name, arch) if part)
    if image.kind == "docker-save":
        name = f"{ref.repository.replace('/', '-')}{tail}-{len(image.layers) - 1 - index}.aci"
    else:
        base = f"{ref.registry}/{ref.repository}" if ref.registry else ref.repository
        name = f"{base}-{layer_id(image, index)}{tail}.aci"
    parts = [part for part in name.split("/") if part]
    if any(part in (".", "..") for part in parts):
        raise DockerError(f"refusing layer file name {name!r} (a path outside {out})",
                          reason="bad-reference")
    return out.joinpath(*parts)


def convert_layers(image: SourceImage, out: Path, compression: str = "gzip"
                   ) -> list[ConvertedImage]:
    """One ACI per layer, each depending on the one below; whiteouts become the top
    image's pathWhitelist (appc has no whiteouts: rendering keeps only listed paths)."""
    whitelist: list[str] | None = None
    squash_plan = plan(image.layers, collect_paths=True)
    if squash_plan.had_whiteouts:
        whitelist = sorted("/" + p for p in squash_plan.surviving_paths)
    written: list[ConvertedImage] = []
    try:
        parent_id = None
        for index, layer in enumerate(image.layers):
            top = index == len(image.layers) - 1
            manifest = layer_manifest(image, index, parent_id, whitelist if top else None)
            path = layer_filename(image, index, out)
            path.parent.mkdir(parents=True, exist_ok=True)
            with ACIWriter(path, compression) as writer:
                writer.add_manifest(validated_json(manifest))
                emit_layer(layer, None, writer)
                parent_id = writer.commit()
            written.append(ConvertedImage(path, parent_id, manifest))
    except BaseException:
        for done in written:
            done.path.unlink(missing_ok=True)
            # Folders made for the reference's nested layer names go too, when left empty.
            folder = done.path.parent
            while folder != out and folder.is_relative_to(out):
                try:
                    folder.rmdir()
                except OSError:
                    break
                folder = folder.parent
        raise
    return written
