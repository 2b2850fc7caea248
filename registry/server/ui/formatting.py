"""Jinja filters that make sizes, IDs, fingerprints and dates readable."""

from __future__ import annotations

import json
import re
from datetime import datetime

from flask import Flask

from registry.aci import short_id
from registry.server.services.tokens import state_of


def human_size(size: int | None) -> str:
    if size is None:
        return "—"
    value = float(size)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if value < 1024 or unit == "GiB":
            return f"{int(value)} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{value:.1f} GiB"


def short_fingerprint(fingerprint: str | None) -> str:
    """The last 16 hex digits (the long key ID gpg shows)."""
    return (fingerprint or "")[-16:]


def spaced_fingerprint(fingerprint: str | None) -> str:
    text = fingerprint or ""
    return " ".join(text[i:i + 4] for i in range(0, len(text), 4))


def timestamp(value: datetime | None) -> str:
    return value.strftime("%Y-%m-%d %H:%M UTC") if value else "—"


def day(value: datetime | None) -> str:
    return value.strftime("%Y-%m-%d") if value else "—"


def pretty_json(text: str | dict[str, object]) -> str:
    data = json.loads(text) if isinstance(text, str) else text
    return json.dumps(data, indent=2, sort_keys=False)


# Digests ("sha256:<hex>"), appc image IDs ("sha512-<hex>") and bare hex of 32+ digits (key
# fingerprints): long enough to wrap a table cell every few characters.
HASH_RE = re.compile(r"^(?:(sha256|sha384|sha512)[:-])?([0-9a-fA-F]{32,})$")


def short_hash(value: object) -> str | None:
    """A hash's short form (algorithm and 12 digits; a fingerprint's long key ID), or None
    when `value` is no hash."""
    if not isinstance(value, str):
        return None
    match = HASH_RE.match(value)
    if match is None:
        return None
    algorithm, digits = match[1], match[2]
    if algorithm:
        return f"{value[:len(algorithm) + 1]}{digits[:12]}…"
    return f"…{digits[-16:]}"


LONG_DETAIL = 60


def detail_items(value: object) -> list[tuple[str, str | None, bool]]:
    """An audit detail as (text shown, full value if shortened, is a hash) pieces: lists
    become their items; hashes and long texts are shortened (the full value on hover)."""
    items = value if isinstance(value, list) else [value]
    pieces: list[tuple[str, str | None, bool]] = []
    for item in items:
        short = short_hash(item)
        text = item if isinstance(item, str) else json.dumps(item)
        if short:
            pieces.append((short, text, True))
        elif len(text) > LONG_DETAIL:
            pieces.append((text[:LONG_DETAIL].rstrip() + "…", text, False))
        else:
            pieces.append((text, None, False))
    return pieces


def register_filters(app: Flask) -> None:
    app.jinja_env.filters.update(
        human_size=human_size, short_id=short_id, short_fingerprint=short_fingerprint,
        spaced_fingerprint=spaced_fingerprint, timestamp=timestamp, pretty_json=pretty_json, day=day,
        token_state=state_of, short_hash=short_hash, detail_items=detail_items,
    )
