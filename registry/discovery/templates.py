"""Rendering appc URL templates: `{name}`, `{ext}` and any label such as `{version}`, `{channel}`.

Substitution is literal (no URL escaping), as in appc's reference implementation, and happens
in one pass so a value that itself looks like `{x}` is never re-expanded. A template still
holding an unfilled `{...}` afterwards is skipped by discovery (`render_template` returns None).
"""

from __future__ import annotations

import re
from collections.abc import Mapping

_VARIABLE = re.compile(r"\{([^{}]*)\}")
_UNFILLED = re.compile(r"\{.*?\}")


def render_template(template: str, values: Mapping[str, str]) -> str | None:
    """The template with every `{key}` of `values` substituted, or None if any `{...}` is left."""
    rendered = _VARIABLE.sub(lambda m: values.get(m.group(1), m.group(0)), template)
    leftover = _VARIABLE.sub(lambda m: m.group(0) if m.group(1) not in values else "", template)
    return None if _UNFILLED.search(leftover) else rendered


def unfilled_variables(template: str, values: Mapping[str, str]) -> list[str]:
    """The `{...}` variables of `template` that `values` does not fill (for error messages)."""
    return [m.group(0) for m in _VARIABLE.finditer(template) if m.group(1) not in values]
