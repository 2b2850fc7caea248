"""Squashing layers into one rootfs in two streaming passes, never holding a layer in memory.

Pass 1 (`plan`) reads the layers top-down and decides, per tar member, whether it survives:
it does unless a higher layer has the same path, whites it (or an ancestor) out, made an
ancestor opaque, or put a non-directory at an ancestor. Only paths are remembered, plus one byte
per member. Pass 2 (`emit`) reads the layers bottom-up again and streams the surviving members
into the ACI, so a lower layer's hard-link target is always written before the link.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from registry.docker.aciwriter import ACIWriter, copy_header
from registry.docker.errors import DockerError
from registry.docker.image import Layer
from registry.docker.layers import Entry, ancestors, walk_layer


@dataclass
class LayerPlan:
    """What pass 2 does with one layer's members, by ordinal."""

    keep: bytearray = field(default_factory=bytearray)
    # A hidden regular file whose content lives on through a surviving hard link to it: the
    # first such link is written as a regular file at this path (ordinal of the target).
    promote: dict[int, str] = field(default_factory=dict)
    # Hard links that must now point at that promoted path instead (ordinal -> new target).
    relink: dict[int, str] = field(default_factory=dict)

    def kept(self, ordinal: int) -> bool:
        return ordinal < len(self.keep) and self.keep[ordinal] == 1


@dataclass
class _Covered:
    """What the layers above the current one hide."""

    seen: set[str] = field(default_factory=set)  # exact paths an upper layer provides
    removed: set[str] = field(default_factory=set)  # whited-out paths (and their subtrees)
    subtree_hidden: set[str] = field(default_factory=set)  # opaque dirs, non-dirs, whiteouts
    # Parents of upper paths: directories there, so a lower symlink or file at such a path must
    # not survive (a symlink would otherwise redirect the upper files somewhere else).
    implied_dirs: set[str] = field(default_factory=set)

    def hides(self, entry: Entry) -> bool:
        path = entry.path
        if path in self.seen or path in self.removed:
            return True
        if not entry.info.isdir() and path in self.implied_dirs:
            return True
        return any(a in self.subtree_hidden for a in ancestors(path))

    def add_implied(self, path: str) -> None:
        for parent in ancestors(path):
            if parent in self.implied_dirs:
                break  # its own ancestors are already there
            self.implied_dirs.add(parent)


@dataclass
class SquashPlan:
    layers: list[LayerPlan]
    surviving_paths: list[str]
    had_whiteouts: bool


def plan(layers: list[Layer], *, collect_paths: bool = False) -> SquashPlan:
    """Pass 1: decide which member of which layer ends up in the squashed rootfs.

    Per layer only paths and member ordinals are kept (never tar headers), so memory grows with
    the number of paths, not with the image's bytes. `collect_paths` also lists the surviving
    paths (for a --nosquash path whitelist).
    """
    covered = _Covered()
    plans: list[LayerPlan] = []
    surviving: list[str] = []
    had_whiteouts = False
    for layer in reversed(layers):
        what = f"layer {layer.description}"
        layer_plan = LayerPlan()
        visible: dict[str, int] = {}  # path -> ordinal of this layer's surviving member
        files: dict[str, int] = {}  # path -> ordinal of a regular file (hard-link targets)
        links: list[tuple[int, str, str]] = []  # (ordinal, path, target) of hard links
        whiteouts: list[str] = []
        opaque: list[str] = []
        nondirs: list[str] = []
        with layer.open() as stream:
            for entry, _tar in walk_layer(stream, what):
                # One byte per member ordinal (members walk_layer skips still count).
                layer_plan.keep.extend(bytes(entry.ordinal + 1 - len(layer_plan.keep)))
                if entry.whiteout is not None:
                    whiteouts.append(entry.whiteout)
                    continue
                if entry.opaque is not None:
                    opaque.append(entry.opaque)
                    continue
                if entry.path == "":
                    continue  # the root itself: the ACI has its own rootfs/ entry
                if not entry.info.isdir():
                    nondirs.append(entry.path)
                if entry.info.isreg():
                    files[entry.path] = entry.ordinal
                if entry.link_target is not None:
                    links.append((entry.ordinal, entry.path, entry.link_target))
                if covered.hides(entry):
                    continue
                previous = visible.get(entry.path)
                if previous is not None:
                    layer_plan.keep[previous] = 0
                visible[entry.path] = entry.ordinal
                layer_plan.keep[entry.ordinal] = 1
        _resolve_links(layer_plan, visible, files, links, what)
        had_whiteouts = had_whiteouts or bool(whiteouts or opaque)
        if collect_paths:
            surviving.extend(visible)
        covered.seen.update(visible)
        for path in visible:
            covered.add_implied(path)
        covered.seen.update(nondirs)
        covered.removed.update(whiteouts)
        covered.subtree_hidden.update(whiteouts, opaque, nondirs)
        plans.append(layer_plan)
    plans.reverse()
    return SquashPlan(plans, surviving, had_whiteouts)


def _resolve_links(layer_plan: LayerPlan, visible: dict[str, int], files: dict[str, int],
                   links: list[tuple[int, str, str]], what: str) -> None:
    """Keep every surviving hard link pointing at content that is really in the output."""
    promoted: dict[str, str] = {}  # hidden target path -> path that now carries its content
    for ordinal, path, target in links:
        if not layer_plan.kept(ordinal):
            continue
        source = files.get(target)
        if source is not None and visible.get(target) == source:
            continue  # the target is written from this layer, before the link
        if source is None:
            raise DockerError(f"{what}: hard link {path!r} points at {target!r}, which is "
                              "not a regular file of the same layer", reason="bad-layer")
        if target in promoted:
            layer_plan.relink[ordinal] = promoted[target]
            continue
        # The target was replaced or removed above; its content survives as this link.
        promoted[target] = path
        layer_plan.promote[source] = path
        layer_plan.keep[ordinal] = 0


def emit(layers: list[Layer], squash_plan: SquashPlan, writer: ACIWriter) -> None:
    """Pass 2: stream the surviving members into the ACI, bottom layer first."""
    for layer, layer_plan in zip(layers, squash_plan.layers, strict=True):
        emit_layer(layer, layer_plan, writer)


def emit_layer(layer: Layer, layer_plan: LayerPlan | None, writer: ACIWriter) -> None:
    """Write one layer's kept members (all non-marker members when `layer_plan` is None).

    Always runs after `plan` has read (and fully verified) the same layer once.
    """
    with layer.open(again=True) as stream:
        for entry, tar in walk_layer(stream, f"layer {layer.description}"):
            if layer_plan is not None and entry.ordinal in layer_plan.promote:
                info = copy_header(entry.info, layer_plan.promote[entry.ordinal])
                writer.add(info, tar.extractfile(entry.info))
                continue
            keep = not entry.is_marker if layer_plan is None else layer_plan.kept(entry.ordinal)
            if not keep:
                continue
            linkname = entry.link_target or ""
            if layer_plan is not None and entry.ordinal in layer_plan.relink:
                linkname = layer_plan.relink[entry.ordinal]
            info = copy_header(entry.info, entry.path, linkname)
            writer.add(info, tar.extractfile(entry.info) if info.isreg() else None)
