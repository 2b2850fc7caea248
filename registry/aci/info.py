"""`ACIInfo`: what reading (read_aci) or extracting (extract_aci) an ACI found.

A module of its own so that computing an image ID (registry.aci.reader's image_id_of, a whole
process behind `pyrkt image` and the benchmarks) does not load `registry.records` and the
`typing` it needs (~10 ms with re and enum): only the readers that describe an image do."""

from __future__ import annotations

from typing import TYPE_CHECKING

from registry.records import record

if TYPE_CHECKING:
    from registry.aci.manifest import ImageManifest


@record(frozen=True)
class ACIInfo:
    image_id: str
    manifest: ImageManifest
    manifest_bytes: bytes
    compression: str
    uncompressed_size: int
