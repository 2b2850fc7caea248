"""registry.jsontext against json itself: the same values read, the same text written, the
same errors, and no `json` (or `re`) loaded by using it."""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path

import pytest

from registry import jsontext

REPO = Path(__file__).resolve().parent.parent

DOCUMENTS = [
    "{}", "[]", '""', "0", "-0", "1.5", "-2.5e-3", "1E400", "123456789012345678901234567890",
    "true", "false", "null", "NaN", "Infinity", "-Infinity",
    ' \t\n\r{"a": [1, 2, {"b": null}], "c": "\\u00e9\\ud83d\\ude00\\n\\"x\\""} \n',
    '{"dup": 1, "dup": 2}', '["\\ud800"]', '"caf\u00e9 \U0001f600"',
    '{"acKind": "PodManifest", "apps": [{"name": "a", "image": {"id": "sha512-0"}}]}',
]
BAD = ["", " ", "{", "[1,]", '{"a" 1}', "tru", "01", "[1] [2]", '"\\x"', '"a\nb"', "{'a': 1}",
       "\ufeff{}", "1 x", "[", "nul"]
VALUES = [
    {}, [], "", "é\U0001f600\n\x00\"\\", 0, -1, 2**70, 1.5, 1e-7, 1e300, True, False, None,
    {"b": 1, "a": [1, 2.0, {"z": None, "y": "x"}]}, {1: "int key", 2.5: "float", None: "n",
                                                     False: "f"},
    [float("inf"), float("-inf")], ("tuple", "as", "list"),
]


@pytest.mark.parametrize("document", DOCUMENTS)
def test_reads_what_json_reads(document: str) -> None:
    ours, theirs = jsontext.loads(document), json.loads(document)
    if isinstance(theirs, float) and math.isnan(theirs):
        assert math.isnan(ours)
    else:
        assert ours == theirs and type(ours) is type(theirs)
    assert jsontext.loads(document.encode()) == json.loads(document.encode()) or \
        document == "NaN"


@pytest.mark.parametrize("document", BAD)
def test_refuses_what_json_refuses_in_its_words(document: str) -> None:
    with pytest.raises(json.JSONDecodeError) as theirs:
        json.loads(document)
    with pytest.raises(json.JSONDecodeError) as ours:
        jsontext.loads(document)
    assert (ours.value.msg, ours.value.pos) == (theirs.value.msg, theirs.value.pos)


def test_bytes_are_utf8_with_an_optional_mark() -> None:
    assert jsontext.loads(b'\xef\xbb\xbf{"a": "\xc3\xa9"}') == {"a": "é"}
    with pytest.raises(ValueError):
        jsontext.loads(b'"\xff"')
    with pytest.raises(TypeError):
        jsontext.loads(3)  # type: ignore[arg-type]


@pytest.mark.parametrize("value", VALUES, ids=range(len(VALUES)))
@pytest.mark.parametrize("sort_keys", [False, True])
@pytest.mark.parametrize("compact", [False, True])
@pytest.mark.parametrize("ensure_ascii", [True, False])
def test_writes_what_json_writes(value: object, sort_keys: bool, compact: bool,
                                 ensure_ascii: bool) -> None:
    if sort_keys and isinstance(value, dict) and len({type(k) for k in value}) > 1:
        return  # mixed key types cannot be sorted by either
    separators = (",", ":") if compact else None
    assert jsontext.dumps(value, sort_keys=sort_keys, compact=compact,
                          ensure_ascii=ensure_ascii) == json.dumps(
        value, sort_keys=sort_keys, separators=separators, ensure_ascii=ensure_ascii)


def test_indented_text_is_jsons() -> None:
    value = {"b": [1, {"c": None}], "a": "x"}
    assert jsontext.dumps(value, indent=2, sort_keys=True) == json.dumps(value, indent=2,
                                                                         sort_keys=True)


def test_what_json_cannot_hold_is_refused_as_json_refuses_it() -> None:
    with pytest.raises(TypeError, match="Object of type set is not JSON serializable"):
        jsontext.dumps({"a": {1}})
    loop: list[object] = []
    loop.append(loop)
    with pytest.raises(ValueError, match="Circular reference"):
        jsontext.dumps(loop)
    with pytest.raises(TypeError):
        jsontext.dumps({(1, 2): "tuple key"})
    assert jsontext.dumps([1, 2]) == "[1, 2]"  # a failed call leaves nothing behind


def test_using_it_loads_neither_json_nor_re() -> None:
    # -S: the development venv's editable finder (a .pth file) loads re itself at start-up
    code = (f"import sys; sys.path.insert(0, {str(REPO)!r}); from registry import jsontext; "
            "jsontext.loads(jsontext.dumps({'a': [1, 2.5, None, 'x']})); "
            "print(' '.join(sorted(m for m in sys.modules if m.split('.')[0] in "
            "('json', 're', 'enum', 'typing'))))")
    done = subprocess.run([sys.executable, "-I", "-S", "-c", code], capture_output=True, text=True,
                          check=True)
    assert done.stdout.strip() == ""
