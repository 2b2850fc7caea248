"""Reference kinds and the name/label match rule applied after every download."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from registry.client.refs import classify, label_mismatch
from registry.discovery import parse_app_string

LABEL = st.from_regex(r"[a-z][a-z0-9]{0,6}", fullmatch=True).filter(
    lambda s: s not in ("name", "version", "os", "arch"))
VALUE = st.from_regex(r"[a-z0-9][a-z0-9.]{0,6}", fullmatch=True)


def test_reference_kinds(tmp_path) -> None:
    local = tmp_path / "image"
    local.write_bytes(b"")
    assert classify("docker://busybox") == "docker"
    assert classify("https://example.com/a.aci") == "url"
    assert classify("./a.aci") == "file" and classify(str(local)) == "file"
    assert classify("sha512-abc") == "id"
    assert classify("example.com/app:1.0") == "name"


@given(wanted=st.dictionaries(LABEL, VALUE, max_size=3),
       extra=st.dictionaries(LABEL, VALUE, max_size=3), version=VALUE)
def test_given_labels_must_match_others_may_be_anything(wanted, extra, version) -> None:
    text = "example.com/app:" + version + "".join(f",{k}={v}" for k, v in wanted.items())
    app = parse_app_string(text, os_name="linux", arch="amd64")
    image_labels = {**extra, **wanted, "version": version}
    assert label_mismatch("example.com/app", image_labels, app) is None  # os/arch may be absent
    assert label_mismatch("example.com/app", {**image_labels, "os": "linux"}, app) is None
    assert "os" in label_mismatch("example.com/app", {**image_labels, "os": "freebsd"}, app)
    assert "name" in label_mismatch("example.com/other", image_labels, app)
    for label in wanted:
        changed = {**image_labels, label: image_labels[label] + "x"}
        assert label in label_mismatch("example.com/app", changed, app)
        missing = {k: v for k, v in image_labels.items() if k != label}
        assert "absent" in label_mismatch("example.com/app", missing, app)


def test_latest_matches_any_version() -> None:
    app = parse_app_string("example.com/app", os_name="linux", arch="amd64")
    assert label_mismatch("example.com/app", {"version": "9.9"}, app) is None
