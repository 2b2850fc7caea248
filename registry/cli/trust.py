"""`pyrkt trust`: trust signing keys for name prefixes (rkt's command), list and remove them.

    pyrkt trust --prefix example.com/app                  discover the keys, review, trust
    pyrkt trust --prefix example.com/app ./key.gpg        a key file (or an https URL)
    pyrkt trust --root ./key.gpg                          trust a key for every image
    pyrkt trust list                                      what is trusted, where
    pyrkt trust rm FINGERPRINT                            stop trusting a key
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import click

from registry.client.config import ClientConfig
from registry.client.errors import TrustError
from registry.client.insecure import InsecureOptions
from registry.client.keys import FoundKey, fetch_keys
from registry.client.session import build_session
from registry.client.trust import TrustStore, check_prefix

from .options import ClientContext, client_options

SUBCOMMANDS = ("list", "rm")


class _TrustGroup(click.Group):
    """`pyrkt trust [flags] [KEY...]` unless the first argument names a subcommand."""

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        if not args or (args[0] not in self.commands and args[0] not in ("-h", "--help")):
            args = ["add", *args]
        return super().parse_args(ctx, args)

    def format_usage(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        formatter.write_usage(ctx.command_path, "[OPTIONS] [--prefix PREFIX | --root] "
                              "[KEY-FILE|URL...]")
        formatter.write_usage(ctx.command_path, "list | rm FINGERPRINT...", prefix="   or: ")

    def format_options(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        # The options are those of the (hidden) default command that trusts keys.
        add_command = self.commands["add"]
        add_command.format_options(click.Context(add_command, info_name=ctx.info_name,
                                                 parent=ctx.parent), formatter)
        self.format_commands(ctx, formatter)


EPILOG = """\b
Examples:
  pyrkt trust --prefix example.com/app               discover the keys, review, trust
  pyrkt trust --prefix example.com/app ./key.gpg     a key file (or an https URL)
  pyrkt trust --root ./key.gpg                        trust a key for every image
  pyrkt trust --prefix 127.0.0.1/demo --insecure-allow-http --port=8080   a local registry
  pyrkt trust --prefix example.com/app --skip-fingerprint-review   in scripts, once the
                                                      fingerprint was checked another way
  pyrkt trust list
  pyrkt trust rm 6E97316572733194E3123F76B08E8D225FA2F0B4
"""


@click.group("trust", cls=_TrustGroup, epilog=EPILOG)
def trust() -> None:
    """Trust the key(s) that sign images under a name prefix.

    With no KEY the keys are discovered from the prefix's ac-discovery-pubkeys meta tags. Each
    key's fingerprint and user IDs are shown and confirmed before it is trusted.
    """


def _fingerprint_blocks(fingerprint: str) -> str:
    blocks = [fingerprint[i:i + 4] for i in range(0, len(fingerprint), 4)]
    half = len(blocks) // 2
    return " ".join(blocks[:half]) + "  " + " ".join(blocks[half:])


NO_ANSWER = ("not trusted: no answer on standard input; use --skip-fingerprint-review after "
             "checking the fingerprint another way")


def _review(found: FoundKey, prefix: str | None) -> bool:
    """The user's answer; a TrustError when standard input has none (closed or not a TTY)."""
    scope = f'prefix "{prefix}"' if prefix else "all images (root)"
    click.echo(f'Prefix: "{prefix}"' if prefix else "Root key (trusted for every image)", err=True)
    click.echo(f'Key: "{found.source}"', err=True)
    click.echo(f"GPG key fingerprint is: {_fingerprint_blocks(found.key.fingerprint)}", err=True)
    for uid in found.key.user_ids:
        click.echo(f"\t{uid}", err=True)
    if found.key.revoked:
        click.echo("\tWARNING: this key is revoked", err=True)
    click.echo(f"Are you sure you want to trust this key for {scope} (yes/no)? ", err=True,
               nl=False)
    answer = sys.stdin.readline()
    if not answer:  # end of input: nobody is there to answer
        click.echo("", err=True)
        raise TrustError(f"key {found.key.fingerprint} {NO_ANSWER}")
    if not sys.stdin.isatty():
        click.echo(answer.strip(), err=True)
    return answer.strip().lower() in ("y", "yes")


@trust.command("add", hidden=True)
@click.argument("keys", nargs=-1, metavar="[KEY-FILE|URL...]")
@click.option("--prefix", default=None, help="the image name prefix to trust the key(s) for")
@click.option("--root", is_flag=True, help="trust the key(s) for every image (needs KEY)")
@click.option("--skip-fingerprint-review", is_flag=True,
              help="trust without asking (only after checking the fingerprint another way)")
@click.option("--insecure-allow-http", is_flag=True,
              help="allow fetching keys (and discovery pages) over plain HTTP")
@click.option("--port", type=click.IntRange(1, 65535), default=None,
              help="reach the discovery server on this port (testing)")
@click.option("--ca-bundle", type=click.Path(exists=True, dir_okay=False, path_type=Path),
              default=None, help="trust this CA certificate bundle (PEM) for HTTPS")
@client_options
def add(keys: tuple[str, ...], prefix: str | None, root: bool, skip_fingerprint_review: bool,
        insecure_allow_http: bool, port: int | None, ca_bundle: Path | None,
        client: ClientContext) -> None:
    if prefix and root:
        raise TrustError("--root and --prefix are exclusive: a key is trusted either for a "
                         "prefix or for every image")
    if not prefix and not root:
        if keys:
            raise TrustError("--root required for non-prefixed (root) keys: trusting a key for "
                             "every image must be asked for explicitly")
        raise TrustError("--prefix required: pyrkt trust --prefix PREFIX [KEY-FILE|URL...]")
    if root and not keys:
        raise TrustError("--root needs a KEY-FILE or URL: root keys are never discovered")
    prefix = check_prefix(prefix) if prefix else None
    insecure = client.insecure
    if insecure_allow_http:
        insecure = insecure | InsecureOptions.parse("http")
    if insecure.insecure_pubkey:
        insecure = insecure | InsecureOptions.parse("http,tls")
    for warning in insecure.warnings():
        client.warn(warning)
    session = build_session(ClientConfig.load(client.dirs), insecure=insecure,
                            ca_bundle=str(ca_bundle) if ca_bundle else None)
    found = fetch_keys(prefix, list(keys), session, insecure=insecure, port=port)
    if not found:
        raise TrustError(f"no keys found for prefix {prefix}")
    store = TrustStore(client.dirs)
    refused = 0
    for item in found:
        if skip_fingerprint_review:
            click.echo(f'Trusting "{item.source}" ({item.key.describe()}) without fingerprint '
                       f"review.", err=True)
        elif not _review(item, prefix):
            refused += 1
            click.echo(f"Key {item.key.fingerprint} not trusted.", err=True)
            continue
        path = store.add(item.key, prefix=prefix, root=root)
        where = f'prefix "{prefix}"' if prefix else "all images (root)"
        click.echo(f'Added key for {where} at "{path}"', err=True)
    if refused:
        raise TrustError(f"{refused} of {len(found)} key(s) were not trusted")


@trust.command("list")
@click.option("--format", "output", type=click.Choice(["table", "json"]), default="table")
@click.option("--no-legend", is_flag=True, help="no header line")
@client_options
def list_keys(output: str, no_legend: bool, client: ClientContext) -> None:
    """Show the trusted keys: prefix, fingerprint, user ID and file."""
    keys = TrustStore(client.dirs).list()
    if output == "json":
        click.echo(json.dumps([{"prefix": k.prefix, "root": k.prefix is None,
                                "fingerprint": k.fingerprint, "user_ids": list(k.key.user_ids),
                                "path": str(k.path)} for k in keys], indent=2))
        return
    rows = [(k.scope, k.fingerprint, k.key.user_ids[0] if k.key.user_ids else "", str(k.path))
            for k in keys]
    if not no_legend:
        rows.insert(0, ("PREFIX", "FINGERPRINT", "USER ID", "FILE"))
    widths = [max((len(r[i]) for r in rows), default=0) for i in range(3)]
    for row in rows:
        click.echo("  ".join(cell.ljust(widths[i]) if i < 3 else cell
                             for i, cell in enumerate(row)).rstrip())


@trust.command("rm")
@click.argument("fingerprints", nargs=-1, required=True, metavar="FINGERPRINT...")
@client_options
def remove(fingerprints: tuple[str, ...], client: ClientContext) -> None:
    """Stop trusting keys (every prefix they are trusted for)."""
    store = TrustStore(client.dirs)
    for fingerprint in fingerprints:
        for path in store.remove(fingerprint):
            click.echo(f'Removed "{path}"', err=True)
