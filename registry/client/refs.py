"""What the user asked for, and whether an image is it: kinds of references, label matching."""

from __future__ import annotations

import os

from registry.discovery import AppRef

from .store import looks_like_id


def classify(ref: str) -> str:
    """One of "id", "url", "file", "docker", "name"."""
    if ref.startswith("docker://"):
        return "docker"
    if ref.startswith(("https://", "http://")):
        return "url"
    if ref.startswith("file://") or ref.startswith(("/", "./", "../")) or ref.endswith(".aci") \
            or os.path.isfile(ref):
        return "file"
    if looks_like_id(ref):
        return "id"
    return "name"


def label_mismatch(name: str, labels: dict[str, str], app: AppRef) -> str | None:
    """Why an image (name, labels) is not what `app` asked for, or None when it is.

    A label the user gave must be present with that value; the defaults the client filled in
    (host os/arch) may only be absent or equal; `version=latest` matches any version.
    """
    if name != app.name:
        return f'its name is "{name}", not "{app.name}"'
    given = app.given or frozenset()
    for label, wanted in app.labels_to_match().items():
        have = labels.get(label)
        if have == wanted or (have is None and label not in given):
            continue
        shown = "absent" if have is None else f'"{have}"'
        return f'its label {label} is {shown}, not "{wanted}"'
    return None
