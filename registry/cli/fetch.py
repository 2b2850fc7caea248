"""`pyrkt fetch IMAGE...`: discover, verify and store images; prints each image ID."""

from __future__ import annotations

import atexit
import gc
from pathlib import Path

import click

from registry.client.fetch import PULL_POLICIES, FetchOptions, fetch_image

from .options import ClientContext, client_options
from .progress import renderer

EPILOG = """\b
Examples:
  pyrkt fetch example.com/app:1.0                   discover, verify and store
  pyrkt fetch example.com/app:1.0,os=linux,arch=aarch64
  pyrkt fetch https://example.com/images/app.aci    its signature at app.aci.asc
  pyrkt fetch ./app.aci                              its signature at ./app.aci.asc
  pyrkt fetch docker://alpine:3.19                   a Docker image (unsigned)

\b
A registry on plain HTTP and another port (e.g. a local test registry):
  pyrkt trust --prefix 127.0.0.1/demo --insecure-allow-http --port=8080
  pyrkt fetch --insecure-options=http --port=8080 127.0.0.1/demo/hello:1.0
"""


@click.command("fetch", epilog=EPILOG)
@click.argument("images", nargs=-1, required=True, metavar="IMAGE...")
@click.option("--pull-policy", type=click.Choice(PULL_POLICIES), default="new", show_default=True,
              help="new: use a stored image when there is one; update: ask the server "
                   "(HTTP caching applies); never: only the store")
@click.option("--full", is_flag=True, help="print the full image ID")
@click.option("--port", type=click.IntRange(1, 65535), default=None,
              help="reach registries on this port (testing; see domains.d for per-domain ports)")
@click.option("--ca-bundle", type=click.Path(exists=True, dir_okay=False, path_type=Path),
              default=None, help="trust this CA certificate bundle (PEM) for HTTPS")
@click.option("--no-deps", is_flag=True, help="do not fetch the images' dependencies")
@click.option("-q", "--quiet", is_flag=True, help="print only the image IDs")
@client_options
def fetch(images: tuple[str, ...], pull_policy: str, full: bool, port: int | None,
          ca_bundle: Path | None, no_deps: bool, quiet: bool, client: ClientContext) -> None:
    """Fetch images into the local store and print their IDs.

    IMAGE is an app string (example.com/app:v1,os=linux — found by appc discovery), an https
    URL of an ACI, a local .aci file (its signature next to it as .aci.asc) or a stored image ID.
    Signatures are checked against the keys trusted with `pyrkt trust`.
    """
    options = FetchOptions(
        insecure=client.insecure, pull_policy=pull_policy, config_dirs=client.dirs,
        port=port, ca_bundle=str(ca_bundle) if ca_bundle else None,
        progress=None if quiet else renderer(),
        log=(lambda message: None) if quiet else client.info,
        fetch_dependencies=not no_deps, trust_keys_from_https=client.trust_keys_from_https)
    # At exit, before the interpreter's teardown: its garbage collections walk every object
    # the fetch made (the HTTP stack, key rings, click), 60-160 ms measured after a 256 MiB
    # fetch, 10-25 ms once they are frozen; the exit frees that memory anyway. At exit only:
    # a process that runs this command in-process (tests) keeps its collector until then.
    atexit.register(gc.freeze)
    store = client.store()
    for image in images:
        stored = fetch_image(image, store, options)
        click.echo(stored.id if full else stored.short_id)
