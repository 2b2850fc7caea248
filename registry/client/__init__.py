"""The host client: configuration, HTTP session, trust store, image store, fetch and push.

Public API:
- `ImageStore(directory=None)` — the local content-addressed store (`StoredImage` rows):
  `import_aci`, `get`, `find`, `list`, `remove`, `aci_path`, `render`, `extract`, `export`,
  `verify`, `gc`, `touch`.
- `fetch_image(ref, store, options=None) -> StoredImage` with `FetchOptions` (insecure options,
  pull policy, config directories, progress, log).
- `TrustStore(dirs)` — trusted keys by prefix (`add`, `remove`, `list`, `keys_for`);
  `fetch_keys(...)` gets keys from a file, a URL or ac-discovery-pubkeys.
- `ConfigDirs`, `ClientConfig`, `build_session`, `InsecureOptions`.
- Errors: `ClientError` and its subclasses `FetchError`, `TrustError`, `StoreError`,
  `ImageNotFound`, `ConfigError`.
"""

from .config import ClientConfig, DomainSettings
from .dirs import ConfigDirs, default_store_dir
from .errors import ClientError, ConfigError, FetchError, ImageNotFound, StoreError, TrustError
from .fetch import FetchOptions, fetch_image
from .index import Remote
from .insecure import InsecureOptions
from .keys import fetch_keys
from .session import build_session
from .store import ImageStore, StoredImage
from .trust import TrustedKey, TrustStore

__all__ = [
    "ClientConfig", "ClientError", "ConfigDirs", "ConfigError", "DomainSettings", "FetchError",
    "FetchOptions", "ImageNotFound", "ImageStore", "InsecureOptions", "Remote", "StoreError",
    "StoredImage", "TrustError", "TrustStore", "TrustedKey", "build_session", "default_store_dir",
    "fetch_image", "fetch_keys",
]
