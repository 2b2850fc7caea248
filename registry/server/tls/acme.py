"""Ordering a certificate over ACME (RFC 8555) with the `acme` library, http-01 challenges.

The account key lives in the database (shared by every host); each order gets a fresh
certificate key. Challenges are published through a callback (the database, so that whichever
host the CA's validation request reaches can answer it). Every failure becomes `ACMEError`
with one line naming the CA and its reason.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import josepy
import requests
from acme import challenges, client, crypto_util, errors, messages
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from registry import __version__

from .certs import CertificateInfo, info, load_chain
from .errors import ACMEError
from .localca import key_pem, new_key

ORDER_TIMEOUT = timedelta(seconds=120)


@dataclass(frozen=True)
class Issued:
    chain_pem: str
    key_pem: str
    info: CertificateInfo


def new_account_key() -> str:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                             serialization.NoEncryption()).decode()


def _one_line(error: BaseException) -> str:
    if isinstance(error, messages.Error):
        text = error.detail or error.description or error.typ
        code = (error.typ or "").rsplit(":", 1)[-1]
        return f"{text} ({code})" if code and code not in text else text
    if isinstance(error, errors.ValidationError):
        reasons = []
        for authz in error.failed_authzrs:
            for chall in authz.body.challenges:
                if chall.error is not None:
                    reasons.append(f"{authz.body.identifier.value}: {_one_line(chall.error)}")
        return "validation failed: " + ("; ".join(reasons) or "no reason given")
    if isinstance(error, requests.exceptions.SSLError):
        return ("TLS error talking to the ACME server (trust its CA with "
                f"PYRKT_REGISTRY_ACME_CA_BUNDLE): {_first_line(error)}")
    if isinstance(error, requests.exceptions.RequestException):
        return f"cannot reach the ACME server: {_first_line(error)}"
    return _first_line(error) or type(error).__name__


def _first_line(error: BaseException) -> str:
    text = str(error).strip()
    return text.splitlines()[0] if text else ""


def obtain(directory_url: str, domains: tuple[str, ...], account_key_pem: str, *,
           email: str | None, ca_bundle: Path | None,
           publish: Callable[[str, str], None], unpublish: Callable[[str], None]) -> Issued:
    """Order, validate (http-01) and download a certificate covering `domains`."""
    try:
        return _obtain(directory_url, domains, account_key_pem, email, ca_bundle, publish,
                       unpublish)
    except ACMEError:
        raise
    except (errors.Error, messages.Error, requests.exceptions.RequestException, ValueError,
            KeyError) as error:
        raise ACMEError(f"ACME: {directory_url} gave no certificate for "
                        f"{', '.join(domains)}: {_one_line(error)}") from None


def _obtain(directory_url: str, domains: tuple[str, ...], account_key_pem: str,
            email: str | None, ca_bundle: Path | None, publish: Callable[[str, str], None],
            unpublish: Callable[[str], None]) -> Issued:
    account_key = josepy.JWKRSA(key=serialization.load_pem_private_key(
        account_key_pem.encode(), password=None))
    net = client.ClientNetwork(account_key, user_agent=f"pyrkt-registry/{__version__}",
                               # requests' `verify`: a CA bundle path or True (acme's
                               # annotation says bool only)
                               verify_ssl=str(ca_bundle) if ca_bundle else True)  # type: ignore[arg-type]
    directory = client.ClientV2.get_directory(directory_url, net)
    acme_client = client.ClientV2(directory, net)
    registration = messages.NewRegistration.from_data(
        email=email, terms_of_service_agreed=True) if email else \
        messages.NewRegistration.from_data(terms_of_service_agreed=True)
    try:
        acme_client.new_account(registration)
    except errors.ConflictError as existing:
        # The key already has an account there: use it.
        net.account = messages.RegistrationResource(uri=existing.location,
                                                    body=messages.Registration())
    cert_key = new_key()
    dns = [d for d in domains if not _is_ip(d)]
    ips = [ipaddress.ip_address(d) for d in domains if _is_ip(d)]
    csr = crypto_util.make_csr(key_pem(cert_key), domains=dns or None, ipaddrs=ips or None)
    order = acme_client.new_order(csr)
    published: list[str] = []
    try:
        for authz in order.authorizations:
            if authz.body.status == messages.STATUS_VALID:
                continue  # an authorization the CA still remembers
            challenge = next((c for c in authz.body.challenges
                              if isinstance(c.chall, challenges.HTTP01)), None)
            if challenge is None:
                raise ACMEError(f"ACME: {directory_url} offers no http-01 challenge for "
                                f"{authz.body.identifier.value}")
            response, validation = challenge.response_and_validation(account_key)
            token = challenge.chall.encode("token")
            publish(token, validation)
            published.append(token)
            acme_client.answer_challenge(challenge, response)
        order = acme_client.poll_and_finalize(order, datetime.now() + ORDER_TIMEOUT)
    finally:
        for token in published:
            unpublish(token)
    chain = order.fullchain_pem
    leaf = load_chain(chain.encode(), "the CA's certificate")[0]
    issued = info(leaf)
    if issued.not_after <= datetime.now(UTC):
        raise ACMEError(f"ACME: {directory_url} issued a certificate that is already expired")
    return Issued(chain_pem=chain, key_pem=key_pem(cert_key).decode(), info=issued)


def _is_ip(name: str) -> bool:
    try:
        ipaddress.ip_address(name)
        return True
    except ValueError:
        return False
