"""TLS failures in words: what went wrong, and the flag or file that gets past it.

`tls_problem(error)` reads a requests/urllib3/ssl error (the exception chain when there is
one, its text otherwise) and names one of:

  unknown-ca   the certificate is signed by a CA the client does not trust
  wrong-name   the certificate does not name the host asked for
  expired      the certificate has expired (or is not valid yet)
  plain-http   the server answers plain HTTP where TLS was expected (e.g. on 443)
  handshake    the server refused or broke off the handshake
  other        anything else

`tls_fix(kind, ...)` is the advice, with the caller's own flag names (trust, fetch, push and
docker2aci spell the insecure switches differently).
"""

from __future__ import annotations

import re
import ssl
from dataclasses import dataclass
from urllib.parse import urlsplit

UNKNOWN_CA, WRONG_NAME, EXPIRED, PLAIN_HTTP, HANDSHAKE, OTHER = (
    "unknown-ca", "wrong-name", "expired", "plain-http", "handshake", "other")

# OpenSSL's X509_V_ERR_* codes (x509_vfy.h).
_UNKNOWN_CA_CODES = {2, 18, 19, 20, 21, 27}
_EXPIRED_CODES = {9, 10}
_NAME_CODES = {62, 64}

_PLAIN_HTTP_MARKS = ("WRONG_VERSION_NUMBER", "wrong version number", "record layer failure",
                     "HTTP_REQUEST", "packet length too long")
_HANDSHAKE_MARKS = ("ALERT", "HANDSHAKE_FAILURE", "UNEXPECTED_EOF", "EOF occurred",
                    "Connection reset by peer", "NO_PROTOCOLS", "UNSUPPORTED_PROTOCOL",
                    "NO_SHARED_CIPHER", "unexpected eof")


@dataclass(frozen=True)
class TLSProblem:
    kind: str
    text: str  # e.g. "the certificate of 127.0.0.1 is signed by an unknown CA (...)"


def _chain(error: BaseException) -> list[BaseException]:
    seen: list[BaseException] = []
    todo: list[object] = [error]
    while todo and len(seen) < 20:
        item = todo.pop(0)
        if not isinstance(item, BaseException) or any(item is s for s in seen):
            continue
        seen.append(item)
        todo += [item.__cause__, item.__context__, getattr(item, "reason", None), *item.args]
    return seen


def _host_of(error: BaseException) -> str | None:
    request = getattr(error, "request", None)
    url = getattr(request, "url", None)
    if isinstance(url, str):
        return urlsplit(url).hostname
    found = re.search(r"host='([^']+)'", str(error))
    return found.group(1) if found else None


def tls_problem(error: BaseException, host: str | None = None) -> TLSProblem:
    host = host or _host_of(error)
    of = f" of {host}" if host else ""
    chain = _chain(error)
    verify = next((e for e in chain if isinstance(e, ssl.SSLCertVerificationError)), None)
    code = getattr(verify, "verify_code", None)
    detail = str(getattr(verify, "verify_message", "") or "")
    text = " ".join(str(e) for e in chain)
    if code is None:
        mark = re.search(r"certificate verify failed: ([^(')\"]+)", text)
        detail = mark.group(1).strip() if mark else ""
    lowered = (detail or text).lower()
    certificate = f"CERTIFICATE_VERIFY_FAILED: {detail}" if detail else "CERTIFICATE_VERIFY_FAILED"
    if code in _NAME_CODES or "mismatch" in lowered or "not valid for" in lowered:
        return TLSProblem(WRONG_NAME, f"the certificate{of} is not valid for that name "
                                      f"({certificate})")
    if code in _EXPIRED_CODES or "expired" in lowered or "not yet valid" in lowered:
        when = "is not valid yet" if code == 9 or "not yet valid" in lowered else "has expired"
        return TLSProblem(EXPIRED, f"the certificate{of} {when} ({certificate})")
    if code in _UNKNOWN_CA_CODES or any(m in lowered for m in (
            "unable to get local issuer", "self-signed", "self signed",
            "unable to verify the first certificate", "unable to get issuer")):
        return TLSProblem(UNKNOWN_CA, f"the certificate{of} is signed by an unknown CA "
                                      f"({certificate})")
    reason = _ssl_reason(chain, text)
    if any(m in text for m in _PLAIN_HTTP_MARKS):
        return TLSProblem(PLAIN_HTTP, f"{host or 'the server'} answers plain HTTP, not TLS "
                                      f"({reason or 'WRONG_VERSION_NUMBER'})")
    if any(m in text for m in _HANDSHAKE_MARKS):
        return TLSProblem(HANDSHAKE, f"{host or 'the server'} refused the TLS handshake"
                                     + (f" ({reason})" if reason else ""))
    if verify is not None or "CERTIFICATE_VERIFY_FAILED" in text:
        return TLSProblem(UNKNOWN_CA if not detail else OTHER,
                          f"the certificate{of} was refused ({certificate})")
    return TLSProblem(OTHER, reason or "TLS failure")


def _ssl_reason(chain: list[BaseException], text: str) -> str:
    for error in chain:
        if isinstance(error, ssl.SSLError) and getattr(error, "reason", None):
            message = re.sub(r"\s*\(_ssl\.c:\d+\)", "", str(error.args[1] if len(error.args) > 1
                                                             else error))
            message = re.sub(r"^\[SSL: [A-Z0-9_]+\]\s*", "", message)
            return f"{error.reason}: {message}" if message else str(error.reason)
    found = re.search(r"\[SSL: ([A-Z0-9_]+)\]\s*([^(')\"]*)", text)
    if found:
        return f"{found.group(1)}: {found.group(2).strip()}" if found.group(2).strip() \
            else found.group(1)
    for mark in ("EOF occurred in violation of protocol", "Connection reset by peer"):
        if mark in text:
            return mark
    return ""


_TEXT_MARKS = (("is signed by an unknown CA", UNKNOWN_CA),
               ("is not valid for that name", WRONG_NAME),
               ("has expired", EXPIRED), ("is not valid yet", EXPIRED),
               ("answers plain HTTP", PLAIN_HTTP), ("refused the TLS handshake", HANDSHAKE))


def kind_of_text(text: str) -> str:
    """The kind of a problem from its `TLSProblem.text` (e.g. inside a discovery attempt)."""
    return next((kind for mark, kind in _TEXT_MARKS if mark in text), OTHER)


def tls_fix(kind: str, *, host: str | None = None, ca_flag: str = "--ca-bundle FILE",
            insecure_flag: str = "--insecure-options=tls",
            http_flag: str = "--insecure-options=http") -> str:
    """What to do about a problem of `kind`, naming the caller's flags."""
    if kind == UNKNOWN_CA:
        return f'trust its CA with {ca_flag} or "caBundle" in a domains.d file'
    if kind == WRONG_NAME:
        return (f"the server must present a certificate for {host or 'this name'} (e.g. from "
                f"`pyrkt-registry tls init` or --acme); {insecure_flag} skips the check")
    if kind == EXPIRED:
        return (f"the server's certificate must be renewed (or this machine's clock is "
                f"wrong); {insecure_flag} skips the check")
    if kind == PLAIN_HTTP:
        return f"the server speaks plain HTTP: {http_flag} allows it"
    if kind == HANDSHAKE:
        return "the server's TLS setup refuses this client (protocol version, or no certificate " \
               "for this name)"
    return f"{insecure_flag} skips certificate checks"
