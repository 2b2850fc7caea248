"""App strings, host os/arch and template rendering, with property-based tests."""

from __future__ import annotations

import re

import pytest
from hypothesis import given
from hypothesis import strategies as st

from registry.discovery import (
    AppRef,
    AppStringError,
    appc_arch,
    host_arch,
    host_os,
    parse_app_string,
    render_template,
    unfilled_variables,
    walk_prefixes,
)

segment = st.from_regex(r"[a-z0-9]{1,6}", fullmatch=True)
identifier = st.builds(
    lambda first, rest: first + "".join(sep + part for sep, part in rest),
    segment, st.lists(st.tuples(st.sampled_from("-._~/"), segment), max_size=4))
label_name = identifier.filter(lambda n: n not in ("name", "version"))
# Label values: anything printable without the separators of the app-string grammar.
label_value = st.text(st.characters(min_codepoint=33, max_codepoint=126,
                                    blacklist_characters=",:=/"), min_size=1, max_size=12)


def test_defaults_and_explicit_labels() -> None:
    ref = parse_app_string("example.com/app", os_name="linux", arch="amd64")
    assert ref.name == "example.com/app"
    assert ref.labels == {"version": "latest", "os": "linux", "arch": "amd64"}
    assert ref.given == frozenset() and ref.version == "latest"
    assert ref.labels_to_match() == {"os": "linux", "arch": "amd64"}

    ref = parse_app_string("example.com/app:v1,os=linux,arch=arm64,channel=beta")
    assert ref.labels == {"version": "v1", "os": "linux", "arch": "arm64", "channel": "beta"}
    assert ref.given == {"version", "os", "arch", "channel"}
    assert ref.labels_to_match() == ref.labels
    assert ref.template_values()["name"] == "example.com/app"

    bare = parse_app_string("example.com/app:1.0", fill_defaults=False)
    assert bare.labels == {"version": "1.0"}


def test_host_defaults_follow_the_machine() -> None:
    ref = parse_app_string("example.com/app")
    assert ref.labels["os"] == host_os() and ref.labels["arch"] == host_arch()


@pytest.mark.parametrize(("machine", "os_name", "arch"), [
    ("x86_64", "linux", "amd64"), ("aarch64", "linux", "aarch64"), ("arm64", "linux", "aarch64"),
    ("i686", "linux", "i386"), ("armv7l", "linux", "armv7l"), ("ppc64le", "linux", "ppc64le"),
    ("s390x", "linux", "s390x"), ("x86_64", "darwin", "x86_64"), ("amd64", "freebsd", "amd64"),
])
def test_appc_arch_names(machine: str, os_name: str, arch: str) -> None:
    assert appc_arch(machine, os_name) == arch


@pytest.mark.parametrize(("text", "complaint"), [
    ("", "empty app string"),
    ("Example.com/app", "not an AC Identifier"),
    ("example.com//app", "not an AC Identifier"),
    ("example.com/app:1:2", "at most once"),
    ("example.com/app,os=linux:1", "only right after the app name"),
    ("example.com/app:", "empty version"),
    ("example.com/app,os", "is not label=value"),
    ("example.com/app,os=", "is not label=value"),
    ("example.com/app,=x", "is not label=value"),
    ("example.com/app,os=linux,os=darwin", "given twice"),
    ("example.com/app:1,version=2", "given twice"),
    ("example.com/app,name=x", '"name" is reserved'),
    ("example.com/app,Bad=x", "not an AC Identifier"),
])
def test_malformed_app_strings(text: str, complaint: str) -> None:
    with pytest.raises(AppStringError, match=re.escape(complaint)):
        parse_app_string(text)


@given(name=identifier, version=st.none() | label_value,
       labels=st.dictionaries(label_name, label_value, max_size=4))
def test_parse_round_trips(name: str, version: str | None, labels: dict[str, str]) -> None:
    text = name + (f":{version}" if version else "") + "".join(f",{k}={v}" for k, v in labels.items())
    ref = parse_app_string(text, fill_defaults=False)
    expected = ({"version": version} if version else {}) | labels
    assert ref.name == name and ref.labels == expected and ref.given == set(expected)
    # str() gives an app string again, which parses to the same reference (defaults filled).
    filled = parse_app_string(text, os_name="linux", arch="amd64")
    assert parse_app_string(str(filled)).labels == filled.labels


@given(name=identifier)
def test_walk_prefixes_shrink_to_the_domain(name: str) -> None:
    prefixes = list(walk_prefixes(name))
    assert prefixes[0] == name and prefixes[-1] == name.split("/")[0]
    assert len(prefixes) == name.count("/") + 1
    assert all(name.startswith(p) for p in prefixes)


template_literal = st.text(st.characters(min_codepoint=32, max_codepoint=126,
                                         blacklist_characters="{}"), max_size=8)


@given(parts=st.lists(st.tuples(template_literal, identifier), min_size=1, max_size=5),
       values=st.dictionaries(identifier, st.text(max_size=8).filter(lambda v: "{" not in v)),
       data=st.data())
def test_render_fills_all_or_skips(parts, values, data) -> None:
    variables = [var for _, var in parts]
    # Give a value to some of the variables, chosen by hypothesis.
    filled = {v: data.draw(st.text(max_size=6)) for v in variables if data.draw(st.booleans())}
    values = {**values, **filled}
    template = "".join(f"{literal}{{{var}}}" for literal, var in parts)
    rendered = render_template(template, values)
    missing = [v for v in variables if v not in values]
    if missing:
        assert rendered is None
        assert unfilled_variables(template, values) == [f"{{{v}}}" for v in missing]
    else:
        assert rendered == "".join(literal + values[var] for literal, var in parts)
        assert unfilled_variables(template, values) == []


@given(value=st.text(max_size=10))
def test_values_are_substituted_once_and_literally(value: str) -> None:
    rendered = render_template("x/{name}/{ext}", {"name": value, "ext": "{ext}"})
    assert rendered == f"x/{value}/{{ext}}"


def test_appref_validates_directly() -> None:
    with pytest.raises(AppStringError):
        AppRef("Bad Name")
    with pytest.raises(AppStringError):
        AppRef("a.example/app", {"name": "x"})
    assert AppRef("a.example/app", {"version": "1"}).given == {"version"}
