"""The `pyrkt` console script: the commands that must start fast, read without click.

`pyrkt run` of a stored image should cost little more than its namespaces, and a Python
process that imports click (and its own imports: inspect, typing, gettext, ...) pays ~10 ms
before reading its first flag. So the entry reads `pyrkt [GLOBAL FLAGS] run ...` itself, from
the same flag declarations click's commands are made of (`flags`, `pod_flags`), and runs the
same body click's command runs. Everything else, and any command line it does not take
exactly as click would (`--help`, a short or unknown option, a bad value: `flags.Defer`), goes
to click's `pyrkt` group unchanged, so help, usage errors and their exit statuses are click's.
"""

from __future__ import annotations

import errno
import gc
import os
import sys

TYPE_CHECKING = False  # collections.abc stays out of every start (see registry.launcher.pods)
if TYPE_CHECKING:
    from collections.abc import Callable, Sequence


# Function-local imports keep start-up fast: each command loads only the parts it runs, and
# `main` loads them after switching the garbage collector off (see there).

COMPLETION_VARIABLE = "_PYRKT_COMPLETE"  # click's shell completion for `pyrkt`: click's to answer


def _run(before: dict[str, object], args: Sequence[str]) -> Callable[[], int]:
    """`pyrkt run` read as click's command reads it (registry/cli/run.py)."""
    from .context import client_context, reported_errors
    from .flags import GLOBAL_FLAGS, GLOBAL_NAMES, Defer, parse
    from .launcher_errors import launcher_errors  # here: only the commands read here need it
    from .pod_flags import (  # here: `run`'s flags and body, loaded only for `run`
        HOISTED,
        POD_FLAGS,
        FlagError,
        hoist_pod_flags,
        lean_convert,
        run_command,
    )

    flags, images = parse((*POD_FLAGS, *GLOBAL_FLAGS), args, interspersed=False)
    given = {name: flags.pop(name) for name in GLOBAL_NAMES}
    flags["images"] = tuple(images)
    client = client_context(given, before)
    debug = client.debug  # as click's command: errors are reported per the flags before IMAGE
    try:
        hoist_pod_flags(flags, client, HOISTED, lean_convert)
    except FlagError:
        raise Defer("run") from None

    def command() -> int:
        with reported_errors(debug=debug):
            # main() exits once this returns: the pod's code is ours as soon as its end is
            # recorded, its stage1's last processes exit without us (see run_pod)
            return int(launcher_errors(run_command)(client, flags, reap=False))

    return command


def _view(before: dict[str, object], args: Sequence[str], name: str) -> Callable[[], int]:
    """`pyrkt list`, `pyrkt status UUID`, `pyrkt image list`, read as click's commands read
    them (registry/cli/pods.py, image.py): their options anywhere, `status` one argument."""
    from . import views  # here: the listings' flags and bodies, loaded for them alone
    from .context import client_context, reported_errors
    from .flags import GLOBAL_FLAGS, GLOBAL_NAMES, Defer, parse
    from .launcher_errors import launcher_errors  # here: only the commands read here need it

    options = {"list": views.LIST_FLAGS, "status": views.STATUS_FLAGS,
               "image list": views.IMAGE_LIST_FLAGS}[name]
    flags, arguments = parse((*options, *GLOBAL_FLAGS), args)
    if len(arguments) != (1 if name == "status" else 0):
        raise Defer(name)  # click says what is missing or extra
    client = client_context({name: flags.pop(name) for name in GLOBAL_NAMES}, before)
    try:  # a bad column name is click's to word, before anything is printed
        if name == "list":
            views.list_fields(flags["fields"], flags["full"])
        elif name == "image list":
            views.check_image_list(flags["fields"], flags["sort_by"])
    except views.FieldError:
        raise Defer(name) from None
    bodies: dict[str, Callable[..., None]] = {
        "list": launcher_errors(views.list_command),
        "status": launcher_errors(views.status_command),
        "image list": views.image_list_command}  # as click's: not a launcher command
    if name == "status":
        flags["uuid"] = arguments[0]

    def command() -> int:
        with reported_errors(debug=client.debug):
            bodies[name](client, **flags)
        return 0

    return command


def _image(before: dict[str, object], args: Sequence[str]) -> Callable[[], int]:
    from .flags import Defer

    if not args or args[0] != "list":  # `image` takes no option of its own but --help
        raise Defer("image")
    return _view(before, args[1:], "image list")


LEAN: dict[str, Callable[[dict[str, object], Sequence[str]], Callable[[], int]]] = {
    "run": _run, "image": _image,
    "list": lambda before, args: _view(before, args, "list"),
    "status": lambda before, args: _view(before, args, "status"),
}


def _lean(argv: Sequence[str]) -> Callable[[], int]:
    """The command to run, when the lean reader takes `argv` (Defer otherwise)."""
    from .flags import GLOBAL_FLAGS, Defer, parse

    if os.environ.get(COMPLETION_VARIABLE):
        raise Defer(COMPLETION_VARIABLE)
    before, rest = parse(GLOBAL_FLAGS, argv, interspersed=False)
    if not rest or rest[0] not in LEAN:
        raise Defer(rest[0] if rest else "no command")
    return LEAN[rest[0]]({k: v for k, v in before.items() if v is not None}, rest[1:])


def main() -> None:
    """The console script. A command read here ends with os._exit once its output is flushed:
    what is left to do at that point is the interpreter's teardown, a few ms of freeing memory
    the exit frees anyway.

    The garbage collector is off while the command starts: it lives a few ms and makes next
    to no reference cycles, and the collector's passes over the objects its imports make cost
    every start ~2-3 ms and free nothing. Click's commands get it back on at once (they may
    run long: fetches, builds), `pyrkt run` once its pod is about to start
    (registry.launcher.run: the processes that live as long as the pod need it)."""
    gc.disable()
    from .flags import Defer  # (after gc.disable(), as every import of the command)

    try:
        command = _lean(sys.argv[1:])
    except Defer:
        gc.enable()
        from .main import pyrkt  # here: click's group for every other command line

        pyrkt()
        return
    try:
        code = command()
    except (EOFError, KeyboardInterrupt):
        sys.stderr.write("\nAborted!\n")  # what click's group says and does
        code = 1
    except OSError as error:
        if error.errno != errno.EPIPE:
            raise
        code = 1  # as click's group: the reader went away (`pyrkt image list | head -1`)
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except OSError:
            pass  # nobody is reading any more
    os._exit(code)


if __name__ == "__main__":  # pragma: no cover
    main()
