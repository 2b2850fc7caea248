"""`pyrkt image verify`: a stored image must still hash to its ID and, when it came with a
signature, that signature must still verify against a key trusted for its name.

One pass over the file does both: the signature's check runs in its process (StreamingVerifier)
fed from the same reads that re-hash and re-validate the image."""

from __future__ import annotations

from registry.signing import SigningError, StreamingVerifier

from .dirs import ConfigDirs
from .errors import StoreError
from .store import ImageStore, StoredImage
from .streams import verifier_feed
from .trust import TrustStore


def verify_stored(store: ImageStore, image: StoredImage, dirs: ConfigDirs) -> str | None:
    """None when the image is intact, else what is wrong with it (damage first)."""
    signature = image.signature_path
    keys = [t.key for t in TrustStore(dirs).keys_for(image.name)] if signature else []
    verifier: StreamingVerifier | None = None
    refused: str | None = None
    if signature is not None and keys:
        try:  # the signer is looked for among the keys before a byte is read
            verifier = StreamingVerifier(signature.read_bytes(), keys)
        except SigningError as error:
            refused = f"signature: {error}"
    feed = verifier_feed(verifier)
    try:
        try:
            store.verify(image.id, also=feed)
        except StoreError as error:
            return str(error)
        if signature is None:
            return None  # fetched with --insecure-options=image: nothing more to check
        if not keys:
            return f'no key is trusted for "{image.name}" any more'
        if verifier is None or feed is None:
            return refused
        feed.close()  # every byte is in the verifier's pipe
        try:
            verifier.finish()
        except SigningError as error:
            return f"signature: {error}"
        return None
    finally:
        if verifier is not None:
            verifier.abort()  # after finish() this only removes its scratch files
        if feed is not None:
            feed.close_quietly()
