"""The builder: one method per acbuild command, each run under the build context's lock.

Every manifest edit is validated by the format core before it is saved, so a bad value
(name, label, port, ...) fails with the core's `ManifestError` and the build is unchanged.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from registry.aci import ImageManifest, check_hostable
from registry.build import edits, files, output, start
from registry.build.context import BuildContext
from registry.build.errors import BuildError, BuildInProgress, NoBuildInProgress
from registry.discovery import AppStringError, parse_app_string
from registry.progress import Progress

Edit = Callable[[edits.Manifest], None]


def _ignore(message: str) -> None:
    """Default for messages nobody asked to see."""


class Builder:
    """acbuild's commands on the build context in `work_path`.

    `history`, when given, is the command line recorded in the image as acbuild does
    (`appc.io/acbuild/command-N` annotations, as acbuild v0.4.0) by every command that changes the image.
    `notice` receives warnings for the user, `debug` the `--debug` chatter.
    """

    def __init__(self, work_path: str | os.PathLike[str] = ".", *, history: str | None = None,
                 notice: Callable[[str], None] = _ignore,
                 debug: Callable[[str], None] = _ignore) -> None:
        self.context = BuildContext.at(work_path)
        self.history = history
        self.notice = notice
        self.debug = debug

    # -- begin / end ---------------------------------------------------------------------

    def begin(self, start_from: str | None = None) -> None:
        """Start a build: empty, or from a directory, a rootfs tarball or an ACI."""
        context = self.context
        if not context.work_path.is_dir():
            raise BuildError(f"work path {context.work_path} is not a directory")
        self.debug(f"Beginning build with {start_from}" if start_from
                   else "Beginning build with an empty ACI")
        try:
            context.directory.mkdir()  # atomic: of two concurrent begins only one gets here
        except FileExistsError:
            raise BuildInProgress() from None
        try:
            with context.locked():
                start.populate(context.image_dir, start_from, scratch=context.directory,
                               notice=self.notice)
                ImageManifest.from_dict(context.read_manifest())
        except BaseException:
            # A failed begin leaves no build behind: the user can simply begin again.
            shutil.rmtree(context.directory, ignore_errors=True)
            raise

    def end(self) -> None:
        """Discard the build in progress."""
        if not self.context.exists():
            raise NoBuildInProgress()
        self.debug("Ending the build")
        with self.context.locked():
            shutil.rmtree(self.context.directory)

    # -- manifest edits ------------------------------------------------------------------

    def _edit(self, change: Edit) -> None:
        if not self.context.exists():
            raise NoBuildInProgress()
        with self.context.locked():
            manifest = self.context.read_manifest()
            change(manifest)
            if self.history:
                edits.add_history(manifest, self.history)
            validated = ImageManifest.from_dict(manifest)  # raises ManifestError: nothing saved
            self.context.save_manifest(validated.to_json(pretty=True))

    def set_name(self, name: str) -> None:
        self._edit(lambda m: edits.set_name(m, name))

    def set_exec(self, command: Sequence[str]) -> None:
        self._edit(lambda m: edits.set_exec(m, list(command)))

    def set_user(self, user: str) -> None:
        self._edit(lambda m: edits.set_user(m, user))

    def set_group(self, group: str) -> None:
        self._edit(lambda m: edits.set_group(m, group))

    def set_working_directory(self, directory: str) -> None:
        self._edit(lambda m: edits.set_working_directory(m, directory))

    def add_label(self, name: str, value: str) -> None:
        self._edit(lambda m: edits.add_label(m, name, value))

    def remove_label(self, name: str) -> None:
        self._edit(lambda m: edits.remove_label(m, name))

    def add_environment(self, name: str, value: str) -> None:
        self._edit(lambda m: edits.add_environment(m, name, value))

    def remove_environment(self, name: str) -> None:
        self._edit(lambda m: edits.remove_environment(m, name))

    def add_annotation(self, name: str, value: str) -> None:
        self._edit(lambda m: edits.add_annotation(m, name, value))

    def remove_annotation(self, name: str) -> None:
        self._edit(lambda m: edits.remove_annotation(m, name))

    def add_port(self, name: str, protocol: str, port: str | int, *, count: int = 1,
                 socket_activated: bool = False) -> None:
        number = parse_port(port)
        if count < 1:
            raise BuildError(f"count must be at least 1, not {count}")
        self._edit(lambda m: edits.add_port(m, name, protocol, number, count=count,
                                            socket_activated=socket_activated))

    def remove_port(self, name_or_number: str) -> None:
        self._edit(lambda m: edits.remove_port(m, name_or_number))

    def add_mount(self, name: str, path: str, *, read_only: bool = False) -> None:
        self._edit(lambda m: edits.add_mount(m, name, path, read_only=read_only))

    def remove_mount(self, name_or_path: str) -> None:
        self._edit(lambda m: edits.remove_mount(m, name_or_path))

    def add_isolator(self, name: str, value: Any) -> None:
        self._edit(lambda m: edits.add_isolator(m, name, value))

    def remove_isolator(self, name: str) -> None:
        self._edit(lambda m: edits.remove_isolator(m, name))

    def add_dependency(self, image_name: str, *, image_id: str | None = None,
                       labels: Sequence[tuple[str, str]] = (), size: int | None = None) -> None:
        """`IMAGE_NAME` may be an app string (`name[:version][,label=value...]`) as in acbuild."""
        try:
            app = parse_app_string(image_name, fill_defaults=False)
        except AppStringError as error:
            raise BuildError(f"couldn't parse dependency name: {error}") from None
        all_labels = [*labels, *app.labels.items()]
        self._edit(lambda m: edits.add_dependency(m, app.name, image_id=image_id,
                                                  labels=all_labels, size=size))

    def remove_dependency(self, image_name: str) -> None:
        self._edit(lambda m: edits.remove_dependency(m, image_name))

    # -- files ---------------------------------------------------------------------------

    def copy(self, source: str | os.PathLike[str], destination: str) -> None:
        """`copy SRC DST`: DST (a path in the image) becomes a copy of SRC."""
        if destination.endswith("/") and destination.strip("/"):
            raise BuildError("there is a trailing path separator in the second operand;"
                             " to copy into a directory use copy-to-dir")
        self.debug(f"Copying host:{source} to aci:{destination}")
        self._change_rootfs(lambda rootfs, staging: files.copy_into_rootfs(
            Path(source), rootfs, destination, staging_parent=staging,
            context_dir=self.context.directory))

    def copy_to_dir(self, sources: Sequence[str | os.PathLike[str]], directory: str) -> None:
        """`copy-to-dir SRC... DIR`: each SRC lands in DIR (created if missing)."""
        if not sources:
            raise BuildError("nothing to copy: give at least one source and a directory")
        self.debug(f"Copying {' '.join(map(str, sources))} to {directory}")
        self._change_rootfs(lambda rootfs, staging: files.copy_into_directory(
            [Path(source) for source in sources], rootfs, directory, staging_parent=staging,
            context_dir=self.context.directory))

    def _change_rootfs(self, change: Callable[[Path, Path], None]) -> None:
        if not self.context.exists():
            raise NoBuildInProgress()
        with self.context.locked():
            manifest = self.context.read_manifest()
            change(self.context.rootfs, self.context.directory)
            if self.history:
                edits.add_history(manifest, self.history)
                self.context.save_manifest(ImageManifest.from_dict(manifest).to_json(pretty=True))

    # -- running commands in the image ---------------------------------------------------

    def run(self, command: Sequence[str], *, working_dir: str | None = None) -> int:
        """`run -- CMD...`: run CMD with the image's rootfs as `/`; returns its exit status.

        As acbuild did: the command runs as root (a build step installs things, whatever user
        the app will later run as), in `/` unless `working_dir` is given, with the image's
        environment and the standard PATH, and with the host's network. What it changes in the
        rootfs stays there: that is the point of a build step. History is recorded only when
        the command succeeds (acbuild's rule).
        """
        if not command:
            raise BuildError("command to run not set")
        if not self.context.exists():
            raise NoBuildInProgress()
        if os.geteuid() != 0:
            # Checked here too, not only by the launcher, so the user sees acbuild's words
            # before anything is locked or read.
            raise BuildError("the run subcommand must be run as root")
        # Imported here: the launcher (ctypes, namespaces) is only needed by this one command,
        # and every other acbuild command should start without it.
        from registry.launcher.errors import LauncherError
        from registry.launcher.oneshot import run_in_rootfs

        with self.context.locked():
            manifest = self.context.read_manifest()
            if manifest.get("dependencies"):
                # acbuild fetched the dependencies and ran the command on an overlay of them;
                # running on this image's files alone would silently see a different tree.
                raise BuildError("running a command in an image with dependencies is not"
                                 " supported (remove them, or run the command before adding"
                                 " them)")
            env = run_environment(manifest)
            self.debug(f"Running: {list(command)}")
            try:
                code = run_in_rootfs(self.context.rootfs, list(command), env=env,
                                     working_dir=working_dir or "/", user="0", group="0")
            except LauncherError as error:
                raise BuildError(str(error)) from None
            if code == 0 and self.history:
                edits.add_history(manifest, self.history)
                self.context.save_manifest(ImageManifest.from_dict(manifest).to_json(pretty=True))
            return code

    # -- reading and writing -------------------------------------------------------------

    def manifest(self) -> ImageManifest:
        if not self.context.exists():
            raise NoBuildInProgress()
        with self.context.locked():
            return ImageManifest.from_dict(self.context.read_manifest())

    def cat_manifest(self, *, pretty: bool = False) -> str:
        # One trailing newline either way, as acbuild prints it.
        return self.manifest().to_json(pretty=pretty).decode().rstrip("\n") + "\n"

    def write(self, path: str | os.PathLike[str], *, overwrite: bool = False,
              progress: Progress | None = None) -> str:
        """Write the image as an ACI and return its image ID (`progress`: registry.progress)."""
        if not self.context.exists():
            raise NoBuildInProgress()
        target = Path(path)
        self.debug(f"Writing ACI to {path}")
        with self.context.locked():
            raw = self.context.read_manifest()
            if raw.get("name") == edits.PLACEHOLDER_NAME:
                raise BuildError("can't write ACI, name was never set (use set-name)")
            manifest = ImageManifest.from_dict(raw)
            # The rules the registry applies on upload (name, version label), checked here so
            # acbuild never writes an image no registry would take.
            check_hostable(manifest.name, {label.name: label.value for label in manifest.labels})
            if isinstance(raw.get("app"), dict) and not raw["app"].get("exec"):
                self.notice("warning: exec command was never set.")
            return output.write_image(manifest, self.context.rootfs, target, overwrite=overwrite,
                                      progress=progress)


STANDARD_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"


def run_environment(manifest: dict[str, Any]) -> dict[str, str]:
    """The environment of `acbuild run`: the image's variables, and PATH.

    acbuild always set the standard PATH; here an image's own PATH wins, since an image that
    sets one (e.g. /opt/app/bin first) expects its build steps to find the same programs.
    """
    app = manifest.get("app")
    variables = app.get("environment", []) if isinstance(app, dict) else []
    env = {variable["name"]: variable["value"] for variable in variables or []}
    env.setdefault("PATH", STANDARD_PATH)
    return env


def parse_port(port: str | int) -> int:
    """acbuild's port rule, checked before the manifest is touched."""
    try:
        number = int(port)
    except ValueError:
        number = -1
    if not 1 <= number <= 65535:
        raise BuildError("port must be a number between 1 and 65535")
    return number

