"""The client's HTTP session: per-domain credentials, CA bundles and TLS checks.

`build_session(config, insecure=..., ca_bundle=...)` gives a `requests.Session` that
- adds a domain's `auth.d` headers only to requests for that exact host (also after a
  redirect; requests itself drops `Authorization` when a redirect leaves the host),
- verifies certificates against the domain's `caBundle` (or `ca_bundle`, or the system store),
- skips certificate checks only for `--insecure-options=tls` (globally or for one domain).
"""

from __future__ import annotations

from urllib.parse import urlsplit

import requests
import urllib3

from registry import __version__

from .config import ClientConfig
from .insecure import InsecureOptions

USER_AGENT = f"pyrkt/{__version__}"


class ClientSession(requests.Session):
    def __init__(self, config: ClientConfig, insecure: InsecureOptions,
                 ca_bundle: str | None = None) -> None:
        super().__init__()
        self.config = config
        self.insecure = insecure
        self.ca_bundle = ca_bundle
        self.trust_env = False  # no ~/.netrc credentials leaking to registries by accident
        self.headers["User-Agent"] = USER_AGENT

    def insecure_for(self, host: str) -> InsecureOptions:
        return self.insecure | self.config.for_host(host).insecure

    def port_for(self, host: str) -> int | None:
        return self.config.for_host(host).port

    def mirror_for(self, host: str) -> str | None:
        return self.config.for_host(host).mirror

    def _verify_for(self, url: str) -> bool | str:
        host = urlsplit(url).hostname or ""
        if self.insecure_for(host).skip_tls_check:
            return False
        ca = self.config.for_host(host).ca_bundle
        if ca is not None:
            return str(ca)
        return self.ca_bundle or True

    def merge_environment_settings(self, url, proxies, stream, verify, cert):  # type: ignore[no-untyped-def]
        settings = super().merge_environment_settings(url, proxies, stream, verify, cert)
        if verify is None or verify is True:
            settings["verify"] = self._verify_for(url)
        return settings

    def prepare_request(self, request: requests.Request) -> requests.PreparedRequest:
        prepared = super().prepare_request(request)
        self._add_domain_headers(prepared)
        return prepared

    def rebuild_auth(self, prepared_request: requests.PreparedRequest,
                     response: requests.Response) -> None:
        super().rebuild_auth(prepared_request, response)
        self._add_domain_headers(prepared_request)

    def _add_domain_headers(self, prepared: requests.PreparedRequest) -> None:
        host = urlsplit(prepared.url or "").hostname or ""
        for name, value in self.config.headers_for(host).items():
            prepared.headers[name] = value

    def send(self, request: requests.PreparedRequest, **kwargs):  # type: ignore[no-untyped-def]
        # A redirect re-enters send() with the new URL: re-decide the TLS check for its host.
        if kwargs.get("verify") is not False:
            kwargs["verify"] = self._verify_for(request.url or "")
        return super().send(request, **kwargs)


def build_session(config: ClientConfig | None = None, *,
                  insecure: InsecureOptions | None = None,
                  ca_bundle: str | None = None) -> ClientSession:
    options = insecure or InsecureOptions()
    # pyrkt prints its own warning for --insecure-options=tls (global or per domain)
    urllib3.disable_warnings(urllib3.exceptions.InsecureRequestWarning)
    return ClientSession(config or ClientConfig(), options, ca_bundle)
