"""JSON for the start path: the standard library's own C codec (`_json`), without `json`.

`import json` costs every Python start ~2.5 ms, and it loads `re` (with `enum`): ~7 ms in all
on this machine class, a fifth of what `pyrkt run` may take. Its Python layer only compiles
regexes for the pure-Python fallback and wraps the C scanner and encoder, which this module
calls directly, as json's own `loads`/`dumps` do. Results are json's, byte for byte (compared
in tests/test_jsontext.py); errors are json's `JSONDecodeError` (a ValueError), and `TypeError`
for what JSON cannot hold. Imports only the standard library, so the ground floor may use it.

Indented output (for people, not for the start path) is left to `json` itself, loaded then.
"""

from __future__ import annotations

import _json

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

_WHITESPACE = " \t\n\r"  # what JSON allows between tokens (json.decoder.WHITESPACE)


class _DecoderSettings:
    """The attributes the C scanner reads from its context (json.JSONDecoder's defaults)."""

    strict = True
    object_hook = None
    object_pairs_hook = None
    parse_float = float
    parse_int = int

    @staticmethod
    def parse_constant(name: str) -> float:
        return {"NaN": float("nan"), "Infinity": float("inf"), "-Infinity": float("-inf")}[name]


_scan = _json.make_scanner(_DecoderSettings())  # type: ignore[arg-type]  # (duck-typed context)


def _fail(message: str, document: str, position: int) -> ValueError:
    from json import JSONDecodeError  # here: an error is rare, and json then costs nothing

    return JSONDecodeError(message, document, position)


def loads(document: str | bytes | bytearray) -> Any:
    """`json.loads(document)` (bytes as UTF-8, a UTF-8 byte-order mark allowed)."""
    if isinstance(document, (bytes, bytearray)):
        document = bytes(document).decode(
            "utf-8-sig" if document.startswith(b"\xef\xbb\xbf") else "utf-8", "surrogatepass")
    elif not isinstance(document, str):
        raise TypeError(f"the JSON object must be str, bytes or bytearray, "
                        f"not {document.__class__.__name__}")
    elif document.startswith("\ufeff"):
        raise _fail("Unexpected UTF-8 BOM (decode using utf-8-sig)", document, 0)
    start = len(document) - len(document.lstrip(_WHITESPACE))
    try:
        value, end = _scan(document, start)
    except StopIteration as error:
        raise _fail("Expecting value", document, error.value) from None
    rest = document[end:]
    if rest.strip(_WHITESPACE):
        raise _fail("Extra data", document, end + len(rest) - len(rest.lstrip(_WHITESPACE)))
    return value


def _refuse(value: object) -> object:
    raise TypeError(f"Object of type {value.__class__.__name__} is not JSON serializable")


def dumps(value: object, *, sort_keys: bool = False, compact: bool = False,
          ensure_ascii: bool = True, indent: int | None = None) -> str:
    """`json.dumps(value, sort_keys=..., ensure_ascii=..., indent=...)`; `compact` is
    `separators=(",", ":")`. Circular structures raise ValueError, as json's do."""
    if indent is not None:
        import json  # here: indented text is for people, never on the start path

        return json.dumps(value, sort_keys=sort_keys, ensure_ascii=ensure_ascii, indent=indent,
                          separators=(",", ":") if compact else None)
    if isinstance(value, str):
        return (_json.encode_basestring_ascii if ensure_ascii else _json.encode_basestring)(value)
    # made per call (a microsecond): the markers of the circularity check must start empty,
    # and an encoding that failed half-way leaves some behind
    encoder = _json.make_encoder(
        {}, _refuse, _json.encode_basestring_ascii if ensure_ascii else _json.encode_basestring,
        None, ":" if compact else ": ", "," if compact else ", ", sort_keys, False, True)
    return "".join(encoder(value, 0))
