"""OpenPGP keys: generation, armored export, detached signing and verification (pysequoia).

Public API (ARCHITECTURE.md):
- `SigningError` — every failure (garbage input, unknown signer, tampered data).
- `generate_key(user_id, *, cipher="rsa4k", validity_seconds=None) -> SecretKey`;
  `load_secret_key(armored, password=None) -> SecretKey`. A SecretKey has `.fingerprint`,
  `.user_ids`, `.public_key`, `.armored_public()`, `.armored_secret()`, and
  `.public_key_expiring(when) -> PublicKey` (for retiring it: old signatures keep verifying).
- `read_public_keys(data) -> list[PublicKey]`; a PublicKey has `.fingerprint` (upper-case hex),
  `.key_id`, `.user_ids`, `.created`, `.expires`, `.revoked`, `.key_fingerprints` (primary and
  subkeys), `.armored()`, `.describe()`, `.has_component(fpr_or_keyid)`.
- `export_public_keys(keys) -> str`: several keys in one armored block (what a pubkeys URL serves).
- `sign_detached(secret_key, path_or_bytes) -> bytes` (armored; a path is streamed).
- `verify_detached(signature, path_or_bytes, keys) -> PublicKey` (the signer). A path is
  memory-mapped by pysequoia (page cache, not process memory); pysequoia holds the GIL meanwhile.
- `StreamingVerifier(signature, keys)`: `.update(chunk)` ... `.finish() -> PublicKey`, for
  checking a download in the same pass (an unknown signer fails at construction, before any
  byte is fetched); `verify_stream(signature, binary_stream, keys) -> PublicKey`.
- `old_client_problems(public_key) -> list[str]`: why rkt 1.x's vendored Go OpenPGP (and appc
  clients of its time) cannot read a key; empty when it can (`compat.py` holds those rules).
  RSA keys from `generate_key` are one sign-capable RSA primary made by PGPy, which it reads.
- `signature_issuer(signature) -> str`: the issuer fingerprint (or key ID) a signature names,
  for trust-store lookups before downloading an image. The issuer is the *signing subkey*; find
  its certificate with `PublicKey.has_component`.
"""

from .compat import old_client_problems
from .detached import read_signature, sign_detached, signature_issuer, verify_detached
from .errors import SigningError
from .keys import (
    CIPHER_SUITES,
    PublicKey,
    SecretKey,
    export_public_keys,
    generate_key,
    load_secret_key,
    read_public_keys,
)
from .streaming import StreamingVerifier, verify_stream

__all__ = [
    "CIPHER_SUITES",
    "PublicKey",
    "SecretKey",
    "SigningError",
    "StreamingVerifier",
    "export_public_keys",
    "generate_key",
    "load_secret_key",
    "old_client_problems",
    "read_public_keys",
    "read_signature",
    "sign_detached",
    "signature_issuer",
    "verify_detached",
    "verify_stream",
]
