"""Jinja filters that make sizes, IDs, fingerprints and dates readable."""

from __future__ import annotations

import json
from datetime import datetime

from flask import Flask

from registry.aci import short_id


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


def pretty_json(text: str | dict[str, object]) -> str:
    data = json.loads(text) if isinstance(text, str) else text
    return json.dumps(data, indent=2, sort_keys=False)


def register_filters(app: Flask) -> None:
    app.jinja_env.filters.update(
        human_size=human_size, short_id=short_id, short_fingerprint=short_fingerprint,
        spaced_fingerprint=spaced_fingerprint, timestamp=timestamp, pretty_json=pretty_json,
    )
