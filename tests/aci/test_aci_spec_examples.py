"""The JSON examples embedded in appc's own Go tests (Debian's golang-github-appc-spec-dev):
every one the Go tests accept must parse here, every one they refuse must be refused.

The Go test tables are read from source: a backtick literal's expectation is the `werr` bool
or the `errPrefix` string closing its table entry, or the test function's name (`...Bad`,
`...Good`). The few examples assigned outside a table are listed in STANDALONE with the
outcome their Go test asserts."""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from components import missing

from registry.aci import ACIError, App, Dependency, ImageManifest, Isolator, PodManifest
from registry.aci.names import check_date, check_identifier, check_name, check_semver, check_url
from registry.aci.parts import parse_annotations, parse_labels

SPEC = Path("/usr/share/gocode/src/github.com/appc/spec/schema")

# (file, Go test function) -> does the Go test expect the example to be accepted?
STANDALONE = {
    ("image_test.go", "TestEmptyApp"): True,
    ("image_test.go", "TestImageManifestMerge"): False,  # no acKind/acVersion
    ("pod_test.go", "TestPodManifestMerge"): False,      # `{}`
    ("pod_test.go", "TestPodManifestUniqueVolumeNames"): False,
    ("dependencies_test.go", "TestEmptyHash"): True,
}


def _scalar(check: Callable[[Any, str], Any]) -> Callable[[str], None]:
    def parse(text: str) -> None:
        value = json.loads(text)
        if not isinstance(value, str):
            raise ValueError("not a JSON string")
        check(value, "value")
    return parse


def _list_of(parse_list: Callable[[dict[str, Any], str, str], Any]) -> Callable[[str], None]:
    return lambda text: parse_list({"items": json.loads(text)}, "items", "")


PARSERS: dict[str, Callable[[str], object]] = {
    "image_test.go": ImageManifest.from_json,
    "pod_test.go": PodManifest.from_json,
    "app_test.go": lambda text: App.from_dict(json.loads(text)),
    "isolator_test.go": lambda text: Isolator.from_dict(json.loads(text)),
    "dependencies_test.go": lambda text: Dependency.from_dict(json.loads(text)),
    "labels_test.go": _list_of(parse_labels),
    "annotations_test.go": _list_of(parse_annotations),
    "acidentifier_test.go": _scalar(check_identifier),
    "acname_test.go": _scalar(check_name),
    "semver_test.go": _scalar(check_semver),
    "date_test.go": _scalar(lambda value, field: check_date(value, field)),
    "url_test.go": _scalar(lambda value, field: check_url(value, field)),
}

_FUNCTION = re.compile(r"^func (Test\w+)\(", re.M)
_LITERAL = re.compile(r"`([^`]*)`")


def _entry_tail(source: str, start: int) -> str | None:
    """The text after a literal up to the `}` closing its table entry (None outside tables)."""
    depth, position = 0, start
    while position < len(source):
        char = source[position]
        if char == "`":
            position = source.index("`", position + 1)
        elif char == '"':
            position = source.index('"', position + 1)
        elif char in "{([":
            depth += 1
        elif char in "})]":
            if depth == 0 and char == "}":
                return source[start:position]
            if depth:  # a ")" at depth 0 closes the []byte(...) around the literal
                depth -= 1
        elif char == "\n" and depth == 0 and ":=" in source[start:position]:
            return None
        position += 1
    return None


def _expectation(file: str, function: str, source: str, literal: re.Match[str]) -> bool | None:
    if function.endswith("Bad"):
        return False
    if (file, function) in STANDALONE:
        return STANDALONE[(file, function)]
    if function.endswith("Good"):
        return True
    tail = _entry_tail(source, literal.end())
    if tail is None:
        return None
    fields = [part.strip() for part in tail.split(",") if part.strip() and part.strip() != ")"]
    last = fields[-1] if fields else ""
    if last in ("true", "false"):
        return last == "false"  # werr
    if last.startswith('"') and last.endswith('"'):
        return last == '""'     # errPrefix: empty means no error expected
    if last.startswith("`"):
        return False            # a non-empty errPrefix
    if fields and function.startswith("TestUnmarshal"):
        return True             # tables of good inputs and the values they give
    return None


def _examples() -> list[Any]:
    if not SPEC.is_dir():
        return [pytest.param(None, None, None, id="no-spec-sources")]
    found = []
    for path in sorted([*SPEC.glob("*_test.go"), *SPEC.glob("types/*_test.go")]):
        if path.name not in PARSERS:
            continue
        source = path.read_text()
        functions = [(m.start(), m.group(1)) for m in _FUNCTION.finditer(source)]
        for literal in _LITERAL.finditer(source):
            function = [name for start, name in functions if start < literal.start()]
            if not function or "Marshal" in function[-1] and "Unmarshal" not in function[-1]:
                continue  # Marshal tests hold expected output, not input examples
            text = literal.group(1)
            if text.startswith('"') and '"+' in text:
                continue
            expected = _expectation(path.name, function[-1], source, literal)
            if expected is None:
                continue
            line = source.count("\n", 0, literal.start()) + 1
            found.append(pytest.param(path.name, text, expected,
                                      id=f"{path.name}:{line}-{'ok' if expected else 'bad'}"))
    return found


EXAMPLES = _examples()


def test_enough_examples_found() -> None:
    if not SPEC.is_dir():
        missing("appc's spec sources are missing: apt-get install golang-github-appc-spec-dev")
    accepted = [p for p in EXAMPLES if p.values[2]]
    refused = [p for p in EXAMPLES if not p.values[2]]
    assert len(accepted) >= 30 and len(refused) >= 30, (len(accepted), len(refused))


@pytest.mark.parametrize(("file", "text", "valid"), EXAMPLES)
def test_go_example(file: str, text: str, valid: bool) -> None:
    if file is None:
        missing("appc's spec sources are missing: apt-get install golang-github-appc-spec-dev")
    parse = PARSERS[file]
    if valid:
        parse(text)
    else:
        with pytest.raises((ACIError, ValueError)):
            parse(text)
