"""`acbuild` (also `pyrkt build`): acbuild's command line over registry.build.Builder.

Each command parses its arguments, calls one Builder method and prints; errors are shown the
way acbuild shows them (`set-name: <reason>` on stderr, exit 1; exit 2 for "not found").
"""

from __future__ import annotations

import copy
import os
import sys
import tempfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

import click

from registry import __version__
from registry.aci import APPC_VERSION
from registry.build import Builder, BuildError, history_line
from registry.build.edits import parse_isolator_value, parse_label_option
from registry.cli.progress import renderer
from registry.errors import PyrktError

T = TypeVar("T")


@dataclass(frozen=True)
class _Options:
    debug: bool
    work_path: str
    no_history: bool
    modify: str | None = None


class AcbuildCommand(click.Command):
    """An acbuild command that answers the common mistakes as acbuild v0.4.0 does.

    No arguments where some are needed: the command's help on stdout, exit 1. A wrong number
    of arguments: `<command>: incorrect number of arguments` on stderr, exit 1. Other usage
    errors (an unknown flag) keep click's message and exit 3, acbuild's code for them.
    """

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        needs = [p for p in self.params if isinstance(p, click.Argument) and p.required]
        if needs and not args:
            click.echo(self.get_help(ctx))
            ctx.exit(1)
        try:
            return super().parse_args(ctx, args)
        except click.MissingParameter as error:
            if isinstance(error.param, click.Argument):
                _wrong_count(ctx)
            raise
        except click.UsageError as error:
            if "unexpected extra argument" in error.message:
                _wrong_count(ctx)
            raise


def _wrong_count(ctx: click.Context) -> None:
    click.echo(f"{_command_words(ctx)}: incorrect number of arguments", err=True)
    ctx.exit(1)


class AcbuildSubgroup(click.Group):
    """`acbuild label`, `acbuild port`, ...: their commands behave as AcbuildCommand."""

    command_class = AcbuildCommand


class AcbuildGroup(click.Group):
    """The root of the acbuild command tree (it also serves as `pyrkt build`)."""

    command_class = AcbuildCommand
    group_class = AcbuildSubgroup

    def main(self, args=None, prog_name=None, complete_var=None,  # type: ignore[no-untyped-def]
             standalone_mode=True, **extra):
        if not standalone_mode:
            return super().main(args, prog_name, complete_var, False, **extra)
        # click exits 2 on usage errors; acbuild (cobra) exits 3.
        try:
            result = super().main(args, prog_name, complete_var, False, **extra)
        except click.UsageError as error:
            error.show()
            sys.exit(3)
        except click.ClickException as error:
            error.show()
            sys.exit(error.exit_code)
        except click.Abort:
            click.echo("Aborted!", err=True)
            sys.exit(1)
        sys.exit(result if isinstance(result, int) else 0)


def _command_words(ctx: click.Context) -> str:
    """`label add` for `acbuild label add ...`: the command as acbuild names it."""
    words: list[str] = []
    while ctx.parent is not None and not isinstance(ctx.command, AcbuildGroup):
        words.append(ctx.command.name or "")
        ctx = ctx.parent
    return " ".join(reversed(words))


def _run(action: Callable[[Builder], T], *, record: Sequence[str] | None = None) -> T:
    """Run one builder action; `record` is the argument list kept in the image's history."""
    ctx = click.get_current_context()
    options = ctx.find_object(_Options) or _Options(False, ".", False)
    command = _command_words(ctx)
    history = None
    if record is not None and not options.no_history:
        history = history_line(command, list(record))

    def builder_at(work_path: str) -> Builder:
        return Builder(
            work_path,
            history=history,
            notice=lambda message: click.echo(message, err=True),
            debug=((lambda message: click.echo(message, err=True)) if options.debug
                   else (lambda _: None)),
        )

    try:
        if options.modify is not None:
            return _modify(options.modify, command, builder_at, action)
        return action(builder_at(options.work_path))
    except PyrktError as error:  # e.g. an ACIError: invalid values, in the core's words
        click.echo(f"{command}: {error}", err=True)
        ctx.exit(error.exit_code if isinstance(error, BuildError) else 1)
    except OSError as error:  # the host said no (permissions, full disk): say what and where
        where = f": {error.filename}" if error.filename else ""
        click.echo(f"{command}: {error.strerror or error}{where}", err=True)
        ctx.exit(1)


def _modify(aci: str, command: str, builder_at: Callable[[str], Builder],
            action: Callable[[Builder], T]) -> T:
    """acbuild --modify FILE COMMAND: the command applied to an existing ACI, in a build
    context of its own, written back in place (a temporary file renamed over it)."""
    ctx = click.get_current_context()
    if command in ("begin", "write", "end"):
        click.echo(f"Can't use the --modify flag with {command}.", err=True)
        ctx.exit(1)
    target = Path(aci)
    if not target.exists():
        click.echo(f"ACI doesn't appear to exist: {aci}.", err=True)
        ctx.exit(1)
    if target.is_dir():
        click.echo(f"ACI to modify is a directory: {aci}.", err=True)
        ctx.exit(1)
    with tempfile.TemporaryDirectory(prefix="acbuild-modify-") as work:
        builder = builder_at(work)
        builder.begin(str(target.resolve()))
        result = action(builder)
        if command != "cat-manifest":
            partial = target.with_name(f".{target.name}.tmp")
            try:
                builder.write(str(partial), overwrite=True)
                os.replace(partial, target)
            finally:
                partial.unlink(missing_ok=True)
        builder.end()
    return result


def _alias(group: click.Group, command: click.Command, name: str) -> None:
    """Register `command` under acbuild's other name too, without listing it twice in help."""
    clone = copy.copy(command)
    clone.hidden = True
    group.add_command(clone, name)


@click.group(cls=AcbuildGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="acbuild", message="%(prog)s version %(version)s",
                      help="Show the version and exit.")
@click.option("--debug", is_flag=True, help="Print out debug information to stderr.")
@click.option("--work-path", default=".", show_default=True, metavar="PATH",
              help="Path to place working files in (the build context is PATH/.acbuild).")
@click.option("--no-history", is_flag=True,
              help="Don't add annotations with the command that was run.")
@click.option("--modify", metavar="ACI", default=None,
              help="Path to an ACI to modify in place (ignores the build context).")
@click.pass_context
def acbuild(ctx: click.Context, debug: bool, work_path: str, no_history: bool,
            modify: str | None) -> None:
    """acbuild: the application container build system (appc images).

    \b
    A build runs as a sequence of commands in one working directory:
      acbuild begin
      acbuild set-name example.com/hello
      acbuild copy hello /app/hello
      acbuild set-exec -- /app/hello
      acbuild write hello.aci
      acbuild end
    """
    ctx.obj = _Options(debug=debug, work_path=work_path, no_history=no_history, modify=modify)


# -- begin / write / end / cat-manifest ---------------------------------------------------


@acbuild.command("version")
def version() -> None:
    """Get the version of acbuild (and of the appc spec it writes)."""
    options = click.get_current_context().find_object(_Options)
    if options is not None and options.modify is not None:
        click.echo("Can't use the --modify flag with version.", err=True)
        click.get_current_context().exit(1)
    click.echo(f"acbuild version {__version__}\nappc version {APPC_VERSION}")


@acbuild.command()
@click.argument("start", required=False)
def begin(start: str | None) -> None:
    """Start a new build: empty, or from a directory, a rootfs tarball or an .aci."""
    _run(lambda builder: builder.begin(start))


@acbuild.command()
@click.option("--overwrite", is_flag=True, help="Overwrite the resulting ACI if it exists.")
@click.argument("aci_path", metavar="FILE.aci")
def write(aci_path: str, overwrite: bool) -> None:
    """Write the image from the current build to a file.

    Prints nothing on success, as acbuild does (`--debug` says where it writes); the image ID
    is `sha512-` of the uncompressed file (`pyrkt fetch` and `actool` print it).
    """
    _run(lambda builder: builder.write(aci_path, overwrite=overwrite, progress=renderer()))


@acbuild.command()
def end() -> None:
    """End the current build, deleting all information about it."""
    _run(lambda builder: builder.end())


@acbuild.command("cat-manifest")
@click.option("--pretty-print", is_flag=True, help="Print the manifest with whitespace.")
def cat_manifest(pretty_print: bool) -> None:
    """Print the manifest from the current build."""
    click.echo(_run(lambda builder: builder.cat_manifest(pretty=pretty_print)), nl=False)


# -- files --------------------------------------------------------------------------------


@acbuild.command("copy")
@click.argument("source", metavar="PATH_ON_HOST")
@click.argument("destination", metavar="PATH_IN_ACI")
def copy_(source: str, destination: str) -> None:
    """Copy a file or directory into the image."""
    _run(lambda builder: builder.copy(source, destination), record=[source, destination])


@acbuild.command("copy-to-dir")
@click.argument("paths", nargs=-1, required=True, metavar="PATH_ON_HOST... PATH_IN_ACI")
def copy_to_dir(paths: tuple[str, ...]) -> None:
    """Copy files or directories into a directory in the image."""
    if len(paths) < 2:
        _wrong_count(click.get_current_context())  # acbuild: needs a source and a directory
    _run(lambda builder: builder.copy_to_dir(paths[:-1], paths[-1]), record=list(paths))


# -- running a command in the image -------------------------------------------------------


@acbuild.command("run", context_settings={"ignore_unknown_options": True})
@click.option("--working-dir", default=None, metavar="DIR",
              help="The working directory inside the image for this command (default: /).")
@click.option("--insecure", is_flag=True,
              help="Allows fetching dependencies over http (accepted for acbuild scripts;"
                   " images with dependencies cannot be run here yet).")
@click.option("--engine", type=click.Choice(["systemd-nspawn", "chroot"]),
              default="systemd-nspawn", show_default=True,
              help="acbuild's engine choice, accepted for its scripts: either way the command"
                   " runs in the launcher's own namespaces, with the host's network.")
@click.argument("command", nargs=-1, required=True, metavar="-- CMD [ARGS]...")
def run(command: tuple[str, ...], working_dir: str | None, insecure: bool, engine: str) -> None:
    """Run a command in the image (as root), saving the changes it makes.

    Needs root (namespaces). Exits with the command's exit status.
    """
    del insecure, engine  # see the options' help: nothing here depends on them
    code = _run(lambda builder: builder.run(command, working_dir=working_dir),
                record=list(command))
    click.get_current_context().exit(code)


# -- app settings -------------------------------------------------------------------------


@acbuild.command("set-name")
@click.argument("name", metavar="ACI_NAME")
def set_name(name: str) -> None:
    """Set the image name."""
    _run(lambda builder: builder.set_name(name), record=[name])


@acbuild.command("set-exec", context_settings={"ignore_unknown_options": True})
@click.argument("command", nargs=-1, required=True, metavar="-- CMD [ARGS]...")
def set_exec(command: tuple[str, ...]) -> None:
    """Set the command to execute when this image is run."""
    _run(lambda builder: builder.set_exec(command), record=list(command))


@acbuild.command("set-working-directory")
@click.argument("directory", metavar="DIR")
def set_working_directory(directory: str) -> None:
    """Set the working directory used when the image is run."""
    _run(lambda builder: builder.set_working_directory(directory), record=[directory])


_alias(acbuild, set_working_directory, "set-wd")


@acbuild.command("set-user")
@click.argument("user")
def set_user(user: str) -> None:
    """Set the user the app runs as (a name, a number or a path)."""
    _run(lambda builder: builder.set_user(user), record=[user])


@acbuild.command("set-group")
@click.argument("group")
def set_group(group: str) -> None:
    """Set the group the app runs as (a name, a number or a path)."""
    _run(lambda builder: builder.set_group(group), record=[group])


# -- name/value lists ---------------------------------------------------------------------


def _name_value_group(name: str, noun: str, add: Callable[[Builder, str, str], None],
                      remove: Callable[[Builder, str], None]) -> click.Group:
    """`NAME add NAME VALUE` / `NAME remove NAME`, shared by environment, label, annotation."""

    @acbuild.group(name, help=f"Manage {noun}s.")
    def group() -> None:
        pass

    @group.command("add", help=f"Add a {noun}, or update an existing one.")
    @click.argument("key", metavar="NAME")
    @click.argument("value", metavar="VALUE")
    def add_command(key: str, value: str) -> None:
        _run(lambda builder: add(builder, key, value), record=[key, value])

    @group.command("remove", help=f"Remove a {noun}.")
    @click.argument("key", metavar="NAME")
    def remove_command(key: str) -> None:
        _run(lambda builder: remove(builder, key), record=[key])

    _alias(group, remove_command, "rm")
    return group


_name_value_group("environment", "environment variable", Builder.add_environment,
                  Builder.remove_environment)
_name_value_group("label", "label", Builder.add_label, Builder.remove_label)
_name_value_group("annotation", "annotation", Builder.add_annotation, Builder.remove_annotation)


# -- ports, mounts, isolators, dependencies -----------------------------------------------


@acbuild.group()
def port() -> None:
    """Manage ports."""


@port.command("add")
@click.argument("name")
@click.argument("protocol")
@click.argument("number", metavar="PORT")
@click.option("--count", type=int, default=1, show_default=True,
              help="A range of ports, from PORT to PORT + count - 1.")
@click.option("--socket-activated", is_flag=True,
              help="The app is socket activated on this/these port(s).")
def port_add(name: str, protocol: str, number: str, count: int, socket_activated: bool) -> None:
    """Add a port, or update an existing one."""
    _run(lambda builder: builder.add_port(name, protocol, number, count=count,
                                          socket_activated=socket_activated),
         record=[name, protocol, number])


@port.command("remove")
@click.argument("name_or_port", metavar="NAME/PORT")
def port_remove(name_or_port: str) -> None:
    """Remove a port by name or port number."""
    _run(lambda builder: builder.remove_port(name_or_port), record=[name_or_port])


_alias(port, port_remove, "rm")


@acbuild.group()
def mount() -> None:
    """Manage mount points."""


_alias(acbuild, mount, "volume")


@mount.command("add")
@click.argument("name")
@click.argument("path")
@click.option("--read-only", is_flag=True, help="Set the mount point to be read only.")
def mount_add(name: str, path: str, read_only: bool) -> None:
    """Add a mount point, or update an existing one."""
    _run(lambda builder: builder.add_mount(name, path, read_only=read_only), record=[name, path])


@mount.command("remove")
@click.argument("name_or_path", metavar="NAME/PATH")
def mount_remove(name_or_path: str) -> None:
    """Remove a mount point by name or path."""
    _run(lambda builder: builder.remove_mount(name_or_path), record=[name_or_path])


_alias(mount, mount_remove, "rm")


@acbuild.group()
def isolator() -> None:
    """Manage isolators."""


@isolator.command("add")
@click.argument("name")
@click.argument("value_file", metavar="JSON_FILE")
def isolator_add(name: str, value_file: str) -> None:
    """Add an isolator (its value is read as JSON from JSON_FILE, - for stdin)."""
    try:
        if value_file == "-":
            text = sys.stdin.buffer.read()
        else:
            with open(value_file, "rb") as source:
                text = source.read()
    except OSError as error:  # acbuild: `isolator add: open FILE: ...`, exit 1
        click.echo(f"isolator add: cannot read {value_file}: {error.strerror or error}", err=True)
        click.get_current_context().exit(1)
    _run(lambda builder: builder.add_isolator(name, parse_isolator_value(text, value_file)),
         record=[name, value_file])


@isolator.command("remove")
@click.argument("name")
def isolator_remove(name: str) -> None:
    """Remove an isolator."""
    _run(lambda builder: builder.remove_isolator(name), record=[name])


_alias(isolator, isolator_remove, "rm")


@acbuild.group()
def dependency() -> None:
    """Manage dependencies."""


@dependency.command("add")
@click.argument("image_name")
@click.option("--image-id", default=None, help="Content hash of the dependency (sha512-...).")
@click.option("--label", "labels", multiple=True, metavar="NAME=VALUE",
              help="Labels used for dependency matching (repeatable).")
@click.option("--size", type=click.IntRange(min=0), default=None,
              help="The size of the image of the referenced dependency, in bytes.")
def dependency_add(image_name: str, image_id: str | None, labels: tuple[str, ...],
                   size: int | None) -> None:
    """Add a dependency, or update an existing one."""
    _run(lambda builder: builder.add_dependency(
        image_name, image_id=image_id, labels=[parse_label_option(label) for label in labels],
        size=size), record=[image_name])


@dependency.command("remove")
@click.argument("image_name")
def dependency_remove(image_name: str) -> None:
    """Remove a dependency."""
    _run(lambda builder: builder.remove_dependency(image_name), record=[image_name])


_alias(dependency, dependency_remove, "rm")


if __name__ == "__main__":  # pragma: no cover
    acbuild()
