"""The host client: configuration, HTTP session, trust store, image store, fetch and push.

Public API:
- `ImageStore(directory=None)` — the local content-addressed store (`StoredImage` rows):
  `import_aci`, `get`, `find`, `list`, `remove`, `aci_path`, `render`, `extract`, `export`,
  `verify`, `gc`, `touch`.
- `fetch_image(ref, store, options=None) -> StoredImage` with `FetchOptions` (insecure options,
  pull policy, config directories, progress, log).
- `TrustStore(dirs)` — trusted keys by prefix (`add`, `remove`, `list`, `keys_for`);
  `fetch_keys(...)` gets keys from a file, a URL or ac-discovery-pubkeys.
- `ConfigDirs`, `default_store_dir()`, `ClientConfig`, `build_session`, `InsecureOptions`.
- Errors: `ClientError` and its subclasses `FetchError`, `TrustError`, `StoreError`,
  `ImageNotFound`, `ClientConfigError`.
"""

from __future__ import annotations

from registry.lazy import lazy_exports

# Public name -> the submodule defining it. Nothing is imported until a name is first used:
# `fetch` pulls in requests/urllib3/ssl (100-260 ms), which `pyrkt run` of a stored image, `pyrkt
# image list` and the launcher never need. Importing a submodule directly
# (`from registry.client.store import ImageStore`) loads only that submodule and what it uses.
_EXPORTS: dict[str, str] = {
    "ClientConfig": "config", "DomainSettings": "config",
    "ConfigDirs": "dirs", "default_store_dir": "dirs",
    "ClientError": "errors", "ClientConfigError": "errors", "FetchError": "errors",
    "ImageNotFound": "errors", "StoreError": "errors", "TrustError": "errors",
    "FetchOptions": "fetch", "fetch_image": "fetch",
    "Remote": "index",
    "InsecureOptions": "insecure",
    "fetch_keys": "keys",
    "build_session": "session",
    "ImageStore": "store", "StoredImage": "store",
    "TrustedKey": "trust", "TrustStore": "trust",
}

__all__ = [
    "ClientConfig", "ClientError", "ConfigDirs", "ClientConfigError", "DomainSettings", "FetchError",
    "FetchOptions", "ImageNotFound", "ImageStore", "InsecureOptions", "Remote", "StoreError",
    "StoredImage", "TrustError", "TrustStore", "TrustedKey", "build_session", "default_store_dir",
    "fetch_image", "fetch_keys",
]


__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS, globals())

TYPE_CHECKING = False  # (typing itself is not loaded for it: ~2 ms of every start)


if TYPE_CHECKING:  # type checkers and IDEs see the names statically
    from .config import ClientConfig, DomainSettings
    from .dirs import ConfigDirs, default_store_dir
    from .errors import (
        ClientConfigError,
        ClientError,
        FetchError,
        ImageNotFound,
        StoreError,
        TrustError,
    )
    from .fetch import FetchOptions, fetch_image
    from .index import Remote
    from .insecure import InsecureOptions
    from .keys import fetch_keys
    from .session import build_session
    from .store import ImageStore, StoredImage
    from .trust import TrustedKey, TrustStore
