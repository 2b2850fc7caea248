"""The `pyrkt` command: a lazy group so each subcommand's module loads only when used."""

from __future__ import annotations

import importlib
import importlib.util

import click

from registry import __version__
from registry.cli.options import global_options

# name -> "module:attribute". Each module is owned by one concern; importing lazily keeps
# `pyrkt --help` fast and lets a host without the server's dependencies still run the client.
SUBCOMMANDS: dict[str, str] = {
    "build": "registry.cli.build:acbuild",
    "trust": "registry.cli.trust:trust",
    "fetch": "registry.cli.fetch:fetch",
    "image": "registry.cli.image:image",
    "push": "registry.cli.push:push",
    "run": "registry.cli.run:run",
    "prepare": "registry.cli.run:prepare",
    "run-prepared": "registry.cli.run:run_prepared",
    "list": "registry.cli.pods:list_pods",
    "status": "registry.cli.pods:status",
    "stop": "registry.cli.pods:stop",
    "rm": "registry.cli.pods:rm",
    "gc": "registry.cli.pods:gc",
    "logs": "registry.cli.pods:logs",
    "enter": "registry.cli.pods:enter",
    "cat-manifest": "registry.cli.pods:cat_manifest",
    "docker2aci": "registry.cli.docker:docker2aci",
}


class LazyGroup(click.Group):
    """A click group whose subcommands are imported on first use."""

    def __init__(self, *args, lazy: dict[str, str] | None = None, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.lazy = dict(lazy or {})

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(set(super().list_commands(ctx)) | set(self._available()))

    def _available(self) -> dict[str, str]:
        available = {}
        for name, target in self.lazy.items():
            module = target.split(":", 1)[0]
            if importlib.util.find_spec(module) is not None:
                available[name] = target
        return available

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        if cmd_name in self.commands:
            return self.commands[cmd_name]
        # Only the named command's module is looked for: `_available()` would search the path
        # for every subcommand's module, on every command's start.
        target = self.lazy.get(cmd_name)
        if target is None or importlib.util.find_spec(target.split(":", 1)[0]) is None:
            return None
        module_name, attr = target.split(":", 1)
        command = getattr(importlib.import_module(module_name), attr)
        if command.name != cmd_name:
            # The same command object may serve under two names (`acbuild` and `pyrkt build`).
            command = _renamed(command, cmd_name)
        return command


def _renamed(command: click.Command, name: str) -> click.Command:
    import copy

    clone = copy.copy(command)
    clone.name = name
    return clone


@click.group(cls=LazyGroup, lazy=SUBCOMMANDS, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="pyrkt")
@global_options
@click.pass_context
def pyrkt(ctx: click.Context, **flags: object) -> None:
    """pyrkt: fetch, verify, store and run App Container (appc) images.

    \b
    Typical use:
      pyrkt trust --prefix example.com/app     trust the signing key for a name prefix
      pyrkt fetch example.com/app:v1            discover, verify and store an image
      pyrkt image list                          what is in the local store
      pyrkt run example.com/app:v1              run it as a pod
      pyrkt --insecure-options=image run ./hello.aci   (rkt's global flags go here too)
    """
    # The subcommands' own copies of these flags fall back to these (registry/cli/options.py).
    ctx.obj = {name: value for name, value in flags.items() if value is not None}


@pyrkt.command("version")
def version() -> None:
    """Print pyrkt's version, the appc spec version and the features (as `rkt version`)."""
    import platform

    # Imported here: `pyrkt --help` and the other subcommands need neither.
    from registry.aci import APPC_VERSION
    from registry.discovery import host_arch, host_os

    click.echo(f"pyrkt Version: {__version__}")
    click.echo(f"appc Version: {APPC_VERSION}")
    click.echo(f"Python Version: {platform.python_version()}")
    click.echo(f"Python OS/Arch: {host_os()}/{host_arch()}")
    click.echo(f"Features: {' '.join(_features())}")


def _features() -> list[str]:
    """rkt's feature words (-TPM +SDJOURNAL) and pyrkt's own, + when this host has them."""
    import shutil

    have = {
        "TPM": False,  # pyrkt does not measure pods into a TPM
        "SDJOURNAL": shutil.which("journalctl") is not None,
        "STAGE1-BUILTIN": True,
        "STAGE1-SYSTEMD": shutil.which("systemd-nspawn") is not None,
        "DOCKER2ACI": True,
        "OCI": True,
    }
    return [("+" if present else "-") + name for name, present in have.items()]


if __name__ == "__main__":  # pragma: no cover
    pyrkt()
