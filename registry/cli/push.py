"""`pyrkt push FILE.aci`: upload an image to a registry (parses, then delegates)."""

from __future__ import annotations

import click

from registry.client.push import (
    TOKEN_ENV,
    PushError,
    default_registry_url,
    image_name,
    push_image,
)

from .options import reported_errors
from .progress import renderer

# Function-local imports keep start-up fast: each command loads only the parts it runs.

EPILOG = """\b
Examples:
  pyrkt push hello.aci --registry https://registry.example.com --token "$PYRKT_TOKEN"
  pyrkt push hello.aci --signature hello.aci.asc     # signed by your own key
  PYRKT_REGISTRY_URL=http://127.0.0.1:8080 pyrkt push hello.aci   # a local test registry
  pyrkt push hello.aci --registry https://127.0.0.1 --ca-bundle pyrkt-data/tls/ca.pem

\b
The token comes from --token, $PYRKT_TOKEN or the client's auth.d entry for the registry's
domain. It is sent over plain http:// only to a loopback address (with a warning), or to
another host with --insecure-allow-http.
"""


@click.command(epilog=EPILOG)
@click.argument("aci", type=click.Path(exists=True, dir_okay=False))
@click.option("--signature", type=click.Path(exists=True, dir_okay=False),
              help="Detached signature (FILE.aci.asc) by a key registered for the repository; "
                   "without it the registry signs with its own key.")
@click.option("--registry", "registry_url", metavar="URL",
              help="Registry base URL, e.g. https://registry.example.com [env "
                   "PYRKT_REGISTRY_URL, else https://DOMAIN of the name].")
@click.option("--token", envvar=TOKEN_ENV, help=f"API token [env {TOKEN_ENV}].")
@click.option("--version", "version", help="Version for an image without a version label.")
@click.option("--ca-bundle", type=click.Path(exists=True, dir_okay=False),
              help="Trust this CA certificate bundle (PEM) for the registry's HTTPS [the "
                   "caBundle of the registry's domain in domains.d, else the system's].")
@click.option("--insecure-skip-tls-verify", is_flag=True, help="Do not check TLS certificates.")
@click.option("--insecure-allow-http", is_flag=True,
              help="Allow sending the token over plain http:// to a host other than loopback.")
def push(aci: str, signature: str | None, registry_url: str | None, token: str | None,
         version: str | None, ca_bundle: str | None, insecure_skip_tls_verify: bool,
         insecure_allow_http: bool) -> None:
    """Upload ACI to a pyrkt registry."""
    verify: bool | str = False if insecure_skip_tls_verify else (
        ca_bundle or _configured_ca(aci, registry_url) or True)
    with reported_errors():
        result = push_image(aci, registry_url=registry_url, token=token, signature=signature,
                            version=version, progress=renderer(), verify=verify,
                            auth_headers=None if token else _configured_auth(aci, registry_url),
                            allow_http=insecure_allow_http,
                            warn=lambda message: click.echo(f"pyrkt: warning: {message}",
                                                            err=True))
    state = "unchanged" if result.unchanged else "pushed"
    click.echo(f"{state} {result.repository}:{result.version} ({result.os}/{result.arch}) "
               f"{result.image_id[:39]}")
    click.echo(f"signed by {result.signed_by}")
    click.echo(result.aci_url())


def _configured_auth(aci: str, registry_url: str | None) -> dict[str, str]:
    """Credentials from the client's auth.d files for the registry's host (as rkt reads them)."""
    from urllib.parse import urlsplit

    from registry.client.config import ClientConfig
    from registry.client.dirs import ConfigDirs
    from registry.client.errors import ClientConfigError

    try:
        host = urlsplit(registry_url or default_registry_url(image_name(aci))).hostname or ""
        return ClientConfig.load(ConfigDirs.from_env()).headers_for(host)
    except (ClientConfigError, PushError, OSError, ValueError):
        return {}


def _configured_ca(aci: str, registry_url: str | None) -> str | None:
    """The domains.d caBundle of the registry's host, as fetch and trust use it."""
    from urllib.parse import urlsplit

    from registry.client.config import ClientConfig
    from registry.client.dirs import ConfigDirs
    from registry.client.errors import ClientConfigError

    try:
        host = urlsplit(registry_url or default_registry_url(image_name(aci))).hostname or ""
        found = ClientConfig.load(ConfigDirs.from_env()).for_host(host).ca_bundle
    except (ClientConfigError, PushError, OSError, ValueError):
        return None
    return str(found) if found else None

