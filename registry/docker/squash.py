"""Squashing layers into one rootfs in streaming passes, never holding a layer in memory.

The rootfs is written top layer first, as docker2aci v0.17.2 writes it (its renderer's order:
the image, then its dependencies). Going down, what the layers above hide is always known
already, so `squash` decides each member as it streams by and writes it at once: every layer is
read once, and compression has work from the first layer on. A member survives unless a
higher layer has the same path, whites it (or an ancestor) out, made an ancestor opaque, or put
a non-directory at an ancestor. Only paths are remembered, plus one byte per member. Hard links
never cross layers (a link to another layer's file is refused), so within each layer a link's
target is written before the link, as tar extraction needs.

Only two things need a layer's whole listing before its first member is written: a later
duplicate of a path already written, and a hard link whose target is hidden (its content then
lives on as the link). `squash` then reports OnePassRefused and the caller starts again with
two passes over every layer: `plan` (top-down, deciding every member) and `emit` (writing in
the same order, to the very tar one pass makes when it can).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from registry.aci import ACIWriter
from registry.aci.writer import XATTR_PREFIXES
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
        # path -> (ordinal, what its header says) of this layer's surviving directories
        self.dirs: dict[str, tuple[int, int]] = {}
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
        described = _directory_key(entry) if entry.is_dir else 0
        if previous is not None:
            if entry.is_dir and self.dirs.get(entry.path) == (previous, described):
                # The same directory again (concatenated tars repeat their parents): applying
                # it changes nothing, so the earlier entry stands and nothing is replaced.
                return None
            keep[previous] = 0  # a later entry for the same path replaces it, as tar does
            self.replaced = True
        self.visible[entry.path] = entry.ordinal
        keep[entry.ordinal] = 1
        if entry.is_dir:
            self.dirs[entry.path] = (entry.ordinal, described)
        return None


def _directory_key(entry: Entry) -> int:
    """What the ACI's header of a directory says besides its name (as header_from copies it),
    hashed: two entries with equal keys are the same directory."""
    tar = entry.tar
    return hash((tar.mode, tar.uid, tar.gid, tar.uname, tar.gname,
                 tar.mtime if "mtime" in tar.pax else int(tar.mtime),
                 tuple(sorted((k, v) for k, v in tar.pax.items() if k.startswith(XATTR_PREFIXES)))))


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

    @property
    def last_plan(self) -> LayerPlan:
        """The plan of the layer `finish` saw last."""
        return self._plans[-1]

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
    """A layer cannot be decided as it streams by (see the module's docstring).
    convert_squashed catches it and writes again; it never reaches a user."""

    def __init__(self, message: str) -> None:
        super().__init__(f"{message}: this layer needs a planning pass of its own",
                         reason="one-pass")


@dataclass
class Attempts:
    """What earlier `squash` attempts over the same layers learnt, so the next one reads less:
    the plan of every layer they walked to the end (index -> plan; written by its plan, never
    refused again) and which layers were read whole (their digests verified once)."""

    plans: dict[int, LayerPlan] = field(default_factory=dict)
    verified: set[int] = field(default_factory=set)
    # After one refusal, the next refusal plans every layer below it in the same read, so a
    # third attempt writes them all by plan: at most three reads of a layer, however many of
    # them refuse.
    plan_rest: bool = False


def squash(layers: list[Layer], writer: ACIWriter, attempts: Attempts | None = None) -> None:
    """One pass over every layer, top first, each member decided and written as it streams by
    (the layers `attempts` knows the plan of are written by it).

    When a layer cannot be decided so, its walk goes on to the end as a plan, the layers above
    it being planned already (a by-product of deciding them), and OnePassRefused is raised with
    the rootfs half-written: the caller starts a new writer and calls again with the same
    `attempts`, which then writes that layer by its plan. The result is the very tar `plan` and
    `emit` make.
    """
    attempts = attempts if attempts is not None else Attempts()
    planner = Planner()
    refusal: str | None = None
    for index in reversed(range(len(layers))):
        layer = layers[index]
        refused = _squash_layer(layer, planner, None if refusal else writer,
                                attempts.plans.get(index), again=index in attempts.verified)
        attempts.verified.add(index)
        attempts.plans.setdefault(index, planner.last_plan)
        refusal = refusal or refused
        if refusal and not attempts.plan_rest:
            break
    if refusal:
        attempts.plan_rest = True
        raise OnePassRefused(refusal)


def _squash_layer(layer: Layer, planner: Planner, writer: ACIWriter | None,
                  layer_plan: LayerPlan | None, *, again: bool) -> str | None:
    """Walk one layer for `planner`, writing its members into `writer` (None: planning only)
    as decided on the way, or by `layer_plan` when known. Returns why it could not be decided
    as it streamed by (None when it could); then nothing was written after that point."""
    walk = _LayerWalk(planner.covered)
    refused: str | None = None

    def visit(entry: Entry) -> Sink | None:
        nonlocal refused
        walk.visit(entry)
        if writer is None or refused is not None:
            return None
        if layer_plan is not None:
            return _planned_sink(entry, layer_plan, writer)
        if walk.replaced:
            refused = f"{layer.description}: {entry.path!r} appears twice"
            return None
        if not walk.plan.kept(entry.ordinal):
            return None
        target = entry.link_target
        if target is not None and (target not in walk.files
                                   or walk.visible.get(target) != walk.files[target]):
            # Not written from this layer: its plan decides what the link becomes.
            refused = f"{layer.description}: hard link {entry.path!r}"
            return None
        return writer.begin(output_header(entry.tar, entry.path, target or ""))

    def after(entry: Entry) -> None:
        if writer is not None and writer.entry_open:
            writer.end()

    layer.walk(visit, again=again, after=after)
    planner.finish(walk, layer)  # what it hides below, and its checks as plan() makes them
    return refused


def _planned_sink(entry: Entry, layer_plan: LayerPlan, writer: ACIWriter) -> Sink | None:
    """Write `entry` as its layer's plan says (kept, promoted or relinked), or skip it."""
    if entry.ordinal in layer_plan.promote:
        return writer.begin(output_header(entry.tar, layer_plan.promote[entry.ordinal]))
    if not layer_plan.kept(entry.ordinal):
        return None
    linkname = layer_plan.relink.get(entry.ordinal, entry.link_target or "")
    return writer.begin(output_header(entry.tar, entry.path, linkname))


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
    """Pass 2: stream the surviving members into the ACI, top layer first (as `squash`)."""
    for layer, layer_plan in reversed(list(zip(layers, squash_plan.layers, strict=True))):
        emit_layer(layer, layer_plan, writer)


def emit_layer(layer: Layer, layer_plan: LayerPlan | None, writer: ACIWriter) -> None:
    """Write one layer's kept members (all non-marker members when `layer_plan` is None).

    Runs after `plan` has read (and fully verified) the same layer once, so its blob digest
    alone is checked again.
    """

    def visit(entry: Entry) -> Sink | None:
        if layer_plan is not None:
            return _planned_sink(entry, layer_plan, writer)
        if entry.is_marker:
            return None
        return writer.begin(output_header(entry.tar, entry.path, entry.link_target or ""))

    def after(entry: Entry) -> None:
        if writer.entry_open:
            writer.end()

    layer.walk(visit, again=True, after=after)
