"""Who signed an image, and may they sign it: the trust store applied to one signature.

A signature names its issuer (the signing subkey); the keys that may have made it are the
trusted keys with that component, and of those, the ones trusted for the image's name (the name
itself, a parent path, or root). Refusals say which key signed, where it is trusted instead,
and the `pyrkt trust --prefix` command that would trust it.
"""

from __future__ import annotations

import os
from collections.abc import Callable

from registry.signing import (
    PublicKey,
    SigningError,
    StreamingVerifier,
    signature_issuer,
    verify_detached,
)

from .errors import FetchError
from .trust import TrustStore


class SignatureCheck:
    def __init__(self, trust: TrustStore, log: Callable[[str], None], *,
                 trust_flags: str = "") -> None:
        self.trust = trust
        self._log = log
        self.trust_flags = trust_flags  # added to the suggested `pyrkt trust` command

    def _flags(self) -> str:
        return f" {self.trust_flags}" if self.trust_flags else ""

    def issuer_keys(self, signature: bytes) -> list[PublicKey]:
        """Trusted keys (for any prefix) that could have made `signature`; [] if unreadable."""
        try:
            issuer = signature_issuer(signature)
        except SigningError:
            return []
        found: dict[str, PublicKey] = {}
        for trusted in self.trust.list():
            if trusted.key.has_component(issuer):
                found[trusted.fingerprint] = trusted.key
        return list(found.values())

    def require_known_signer(self, signature: bytes, where: str) -> None:
        """Before a download whose image name is not known yet (a URL): the signer must at least
        be trusted for some prefix, or nothing about the image could make it acceptable."""
        try:
            issuer = signature_issuer(signature)
        except SigningError as error:
            raise FetchError(f"the signature for {where} is unreadable: {error}") from None
        if not self.issuer_keys(signature):
            raise FetchError(f"the image at {where} is signed by key {issuer}, which is not "
                             f"trusted for any image name\n  to trust it: pyrkt trust --prefix "
                             f"IMAGE-NAME-PREFIX{self._flags()} KEY-FILE")

    def check_streamed(self, verifier: StreamingVerifier, signature: bytes, name: str,
                        where: str) -> None:
        signers = self.trusted_signers(signature, name)  # trusted for this very name?
        try:
            fingerprint = verifier.finish().fingerprint
        except SigningError as error:
            raise FetchError(f"refusing {where}: the signature does not verify: {error}") from None
        signer = next((key for key in signers if key.fingerprint == fingerprint), None)
        if signer is None:
            raise FetchError(f"refusing {where}: signed by {fingerprint}, which is not trusted "
                             f'for "{name}"')
        self._log(f"signature verified: {name} signed by {signer.describe()}")

    def trusted_signers(self, signature: bytes, name: str) -> list[PublicKey]:
        """The trusted keys that could have made `signature` for image `name`, or a refusal."""
        try:
            issuer = signature_issuer(signature)
        except SigningError as error:
            raise FetchError(f"the signature of {name} is unreadable: {error}") from None
        keys = [t.key for t in self.trust.keys_for(name)]
        signers = [key for key in keys if key.has_component(issuer)]
        if signers:
            return signers
        elsewhere = self.trust.prefixes_trusting(issuer)
        known = next((t.key for t in self.trust.list() if t.key.has_component(issuer)), None)
        who = f"{known.describe()}" if known else issuer
        lines = [f'image "{name}" is signed by key {who}, which is not trusted for "{name}"']
        if elsewhere:
            lines.append(f"  that key is trusted only for: {', '.join(elsewhere)}")
        elif not keys:
            lines.append(f'  no keys are trusted for "{name}" or any of its parent prefixes')
        lines.append(f"  to trust the key for this image's prefix: pyrkt trust --prefix {name}"
                     f"{self._flags()}")
        raise FetchError("\n".join(lines))

    def verify_file(self, signature: bytes, path: str | os.PathLike[str], name: str,
                    where: str) -> PublicKey:
        signers = self.trusted_signers(signature, name)
        try:
            signer = verify_detached(signature, path, signers)
        except SigningError as error:
            raise FetchError(f"refusing {where}: the signature does not verify: {error}") from None
        self._log(f'signature verified: {name} signed by {signer.describe()}')
        return signer
