"""Squashing layers into one rootfs in streaming passes, never holding a layer in memory.

Pass 1 (`plan`) reads the layers top-down and decides, per tar member, whether it survives:
it does unless a higher layer has the same path, whites it (or an ancestor) out, made an
ancestor opaque, or put a non-directory at an ancestor. Only paths are remembered, plus one byte
per member. Pass 2 (`emit`) reads the layers bottom-up again and streams the surviving members
into the ACI, so a lower layer's hard-link target is always written before the link.

The bottom layer, planned last and emitted first, is read once (`squash`): what the layers
above hide is known by then, so each member is decided and written as it streams by. Only two
things need the whole layer first, a later duplicate of a path already written and a hard link
whose target is hidden; `squash` then reports OnePassRefused and the caller starts again with
both passes. A single-layer image is so read once instead of twice, a base layer (usually
most of an image's bytes) likewise.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from registry.aci import ACIWriter
from registry.docker.errors import DockerError
from registry.docker.image import Layer
from registry.docker.layers import Entry, Sink, ancestors, output_header


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
        if not entry.is_dir and path in self.implied_dirs:
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


class _LayerWalk:
    """Pass 1 over one layer: which of its members survive what the layers above hide."""

    def __init__(self, covered: _Covered) -> None:
        self.covered = covered
        self.plan = LayerPlan()
        self.visible: dict[str, int] = {}  # path -> ordinal of this layer's surviving member
        self.files: dict[str, int] = {}  # path -> ordinal of a regular file (link targets)
        self.links: list[tuple[int, str, str]] = []  # (ordinal, path, target) of hard links
        self.whiteouts: list[str] = []
        self.opaque: list[str] = []
        self.nondirs: list[str] = []
        self.replaced = False  # a member replaced an earlier one of this layer

    def visit(self, entry: Entry) -> Sink | None:
        keep = self.plan.keep
        # One byte per member ordinal (members the walk skips still count).
        keep.extend(bytes(entry.ordinal + 1 - len(keep)))
        if entry.whiteout is not None:
            self.whiteouts.append(entry.whiteout)
            return None
        if entry.opaque is not None:
            self.opaque.append(entry.opaque)
            return None
        if entry.path == "":
            return None  # the root itself: the ACI has its own rootfs/ entry
        if not entry.is_dir:
            self.nondirs.append(entry.path)
        if entry.is_regular:
            self.files[entry.path] = entry.ordinal
        if entry.link_target is not None:
            self.links.append((entry.ordinal, entry.path, entry.link_target))
        if self.covered.hides(entry):
            return None
        previous = self.visible.get(entry.path)
        if previous is not None:
            keep[previous] = 0  # a later entry for the same path replaces it, as tar does
            self.replaced = True
        self.visible[entry.path] = entry.ordinal
        keep[entry.ordinal] = 1
        return None


class Planner:
    """Pass 1, one layer at a time from the top: `add` each layer, then `result()`."""

    def __init__(self, *, collect_paths: bool = False) -> None:
        self.covered = _Covered()
        self._plans: list[LayerPlan] = []  # top layer first
        self._surviving: list[str] = []
        self._had_whiteouts = False
        self._collect_paths = collect_paths

    def add(self, layer: Layer) -> None:
        walk = _LayerWalk(self.covered)
        layer.walk(walk.visit)
        self.finish(walk, layer)

    def finish(self, walk: _LayerWalk, layer: Layer) -> None:
        """Account for one walked layer in what hides the layers below it."""
        _resolve_links(walk.plan, walk.visible, walk.files, walk.links,
                       f"layer {layer.description}")
        covered = self.covered
        self._had_whiteouts = self._had_whiteouts or bool(walk.whiteouts or walk.opaque)
        if self._collect_paths:
            self._surviving.extend(walk.visible)
        covered.seen.update(walk.visible)
        for path in walk.visible:
            covered.add_implied(path)
        covered.seen.update(walk.nondirs)
        covered.removed.update(walk.whiteouts)
        covered.subtree_hidden.update(walk.whiteouts, walk.opaque, walk.nondirs)
        self._plans.append(walk.plan)

    def result(self) -> SquashPlan:
        return SquashPlan(self._plans[::-1], self._surviving, self._had_whiteouts)


def plan(layers: list[Layer], *, collect_paths: bool = False) -> SquashPlan:
    """Pass 1: decide which member of which layer ends up in the squashed rootfs.

    Per layer only paths and member ordinals are kept (never tar headers), so memory grows with
    the number of paths, not with the image's bytes. `collect_paths` also lists the surviving
    paths (for a --nosquash path whitelist).
    """
    planner = Planner(collect_paths=collect_paths)
    for layer in reversed(layers):
        planner.add(layer)
    return planner.result()


class OnePassRefused(DockerError):
    """The bottom layer cannot be decided as it streams by (see the module's docstring).
    convert_squashed catches it and runs both passes; it never reaches a user."""

    def __init__(self, message: str) -> None:
        super().__init__(f"{message}: this layer needs a planning pass of its own",
                         reason="one-pass")


def squash(layers: list[Layer], writer: ACIWriter) -> None:
    """Both passes, the bottom layer read once: raises OnePassRefused (having written part of
    the rootfs, so the caller starts a new writer) when it needs a pass of its own."""
    planner = Planner()
    for layer in reversed(layers[1:]):
        planner.add(layer)
    bottom = layers[0]
    walk = _LayerWalk(planner.covered)

    def visit(entry: Entry) -> Sink | None:
        walk.visit(entry)
        if walk.replaced:
            raise OnePassRefused(f"{bottom.description}: {entry.path!r} appears twice")
        if not walk.plan.kept(entry.ordinal):
            return None
        target = entry.link_target
        if target is not None and (target not in walk.files
                                   or walk.visible.get(target) != walk.files[target]):
            # Not (yet) written from this layer: pass 1 decides what the link becomes.
            raise OnePassRefused(f"{bottom.description}: hard link {entry.path!r}")
        return writer.begin(output_header(entry.tar, entry.path, target or ""))

    def after(entry: Entry) -> None:
        if writer.entry_open:
            writer.end()

    bottom.walk(visit, after=after)
    planner.finish(walk, bottom)  # its checks (hard links) as plan() would make them
    upper = planner.result().layers[1:]
    for layer, layer_plan in zip(layers[1:], upper, strict=True):
        emit_layer(layer, layer_plan, writer)


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

    Runs after `plan` has read (and fully verified) the same layer once, so its blob digest
    alone is checked again.
    """

    def visit(entry: Entry) -> Sink | None:
        if layer_plan is not None and entry.ordinal in layer_plan.promote:
            return writer.begin(output_header(entry.tar, layer_plan.promote[entry.ordinal]))
        keep = not entry.is_marker if layer_plan is None else layer_plan.kept(entry.ordinal)
        if not keep:
            return None
        linkname = entry.link_target or ""
        if layer_plan is not None and entry.ordinal in layer_plan.relink:
            linkname = layer_plan.relink[entry.ordinal]
        return writer.begin(output_header(entry.tar, entry.path, linkname))

    def after(entry: Entry) -> None:
        if writer.entry_open:
            writer.end()

    layer.walk(visit, again=True, after=after)
