"""`pyrkt image verify`: a stored image must still hash to its ID and, when it came with a
signature, that signature must still verify against a key trusted for its name."""

from __future__ import annotations

from registry.signing import SigningError, verify_detached

from .dirs import ConfigDirs
from .errors import StoreError
from .store import ImageStore, StoredImage
from .trust import TrustStore


def verify_stored(store: ImageStore, image: StoredImage, dirs: ConfigDirs) -> str | None:
    """None when the image is intact, else what is wrong with it."""
    try:
        store.verify(image.id)
    except StoreError as error:
        return str(error)
    signature = image.signature_path
    if signature is None:
        return None  # fetched with --insecure-options=image: nothing more to check
    keys = [t.key for t in TrustStore(dirs).keys_for(image.name)]
    if not keys:
        return f'no key is trusted for "{image.name}" any more'
    try:
        verify_detached(signature.read_bytes(), image.path, keys)
    except SigningError as error:
        return f"signature: {error}"
    return None
