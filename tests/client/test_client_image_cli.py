"""`pyrkt image list|rm|gc|export|extract|render|cat-manifest|verify` on a real store."""

from __future__ import annotations

import json
import re
import sqlite3
import time
from datetime import UTC, datetime
from pathlib import Path

import pytest
from client_kit import ClientEnv, build_aci


@pytest.fixture()
def filled(env: ClientEnv, tmp_path: Path, trusted_key) -> dict[str, str]:
    env.trust_key(trusted_key, "example.com")
    ids = {}
    for name, version, size in (("example.com/small", "1", 10), ("example.com/big", "2", 50000)):
        aci = tmp_path / f"{name.split('/')[1]}.aci"
        ids[name] = build_aci(aci, name, {"version": version}, {"data": "x" * size},
                              compression="none", key=trusted_key)
        result = env.run(["fetch"], str(aci))
        assert result.exit_code == 0, result.output
    return ids


def test_list_columns_sort_and_formats(env: ClientEnv, filled: dict[str, str]) -> None:
    table = env.run(["image", "list"])
    assert table.exit_code == 0
    lines = table.output.strip().splitlines()
    assert lines[0].split() == ["ID", "NAME", "SIZE", "IMPORT", "TIME", "LAST", "USED"]
    assert filled["example.com/small"][:39] in lines[1] and "example.com/small:1" in lines[1]
    assert "KiB" in lines[2] and ("ago" in lines[2] or "just now" in lines[2])

    bare = env.run(["image", "list"], "--no-legend", "--full", "--fields", "id,size",
                   "--sort", "size", "--order", "desc")
    rows = [line.split() for line in bare.output.strip().splitlines()]
    assert [r[0] for r in rows] == [filled["example.com/big"], filled["example.com/small"]]
    assert int(rows[0][1]) > int(rows[1][1])

    docs = json.loads(env.run(["image", "list"], "--format", "json").output)
    assert {d["name"] for d in docs} == set(filled)
    assert all(d["signed"] for d in docs)
    pretty = env.run(["image", "list"], "--format", "json-pretty").output
    assert pretty.startswith("[\n  {") and json.loads(pretty) == docs
    bad = env.run(["image", "list"], "--fields", "id,colour")
    assert bad.exit_code != 0 and "colour" in bad.output


def test_list_shows_the_index_times(env: ClientEnv, filled: dict[str, str]) -> None:
    """IMPORT TIME and LAST USED are the index's seconds: "ago" in the table, ISO 8601 (UTC)
    with --full and in JSON, and the sort order of --sort importtime/lastused."""
    now = time.time()
    small, big = filled["example.com/small"], filled["example.com/big"]
    times = {small: (now - 3 * 86400 - 50, now - 7200 - 30), big: (now - 90, now - 2)}
    with sqlite3.connect(env.store_dir / "index.db") as db:
        for image_id, (imported, used) in times.items():
            db.execute("UPDATE images SET import_time = ?, last_used = ? WHERE id = ?",
                       (imported, used, image_id))
    table = env.run(["image", "list"], "--no-legend", "--fields", "name,importtime,lastused")
    assert table.exit_code == 0, table.output
    assert [re.split(r"\s\s+", line) for line in table.output.strip().splitlines()] == [
        ["example.com/small:1", "3 days ago", "2 hours ago"],
        ["example.com/big:2", "1 minute ago", "just now"]]

    def iso(stamp: float, **kwargs: str) -> str:
        return datetime.fromtimestamp(stamp, UTC).isoformat(**kwargs)

    full = env.run(["image", "list"], "--no-legend", "--full", "--fields",
                   "id,importtime,lastused", "--sort", "lastused", "--order", "desc")
    assert [line.split() for line in full.output.strip().splitlines()] == [
        [image_id, iso(imported, timespec="seconds"), iso(used, timespec="seconds")]
        for image_id, (imported, used) in ((big, times[big]), (small, times[small]))]
    docs = json.loads(env.run(["image", "list"], "--format", "json").output)
    assert [(d["id"], d["import_time"], d["last_used"]) for d in docs] == [
        (image_id, iso(imported), iso(used))
        for image_id, (imported, used) in ((small, times[small]), (big, times[big]))]


def test_cat_manifest_export_extract_render(env: ClientEnv, filled, tmp_path: Path) -> None:
    image_id = filled["example.com/small"]
    plain = env.run(["image", "cat-manifest"], image_id[:20])
    assert json.loads(plain.output)["name"] == "example.com/small"
    pretty = env.run(["image", "cat-manifest"], "--pretty-print", "example.com/small")
    assert pretty.output.startswith("{\n    ") and json.loads(pretty.output)["name"] == \
        "example.com/small"
    assert env.run(["image", "export"], image_id, str(tmp_path / "out.aci")).exit_code == 0
    assert (tmp_path / "out.aci").read_bytes() == (tmp_path / "small.aci").read_bytes()
    again = env.run(["image", "export"], image_id, str(tmp_path / "out.aci"))
    assert again.exit_code != 0 and "--overwrite" in again.output
    assert env.run(["image", "extract"], "--rootfs-only", image_id,
                   str(tmp_path / "rootfs")).exit_code == 0
    assert (tmp_path / "rootfs" / "data").read_text() == "x" * 10
    assert env.run(["image", "render"], image_id, str(tmp_path / "tree")).exit_code == 0
    assert (tmp_path / "tree" / "manifest").is_file()
    assert (tmp_path / "tree" / "rootfs" / "data").is_file()
    busy = env.run(["image", "render"], "--rootfs-only", image_id, str(tmp_path / "tree"))
    assert busy.exit_code != 0 and "not an empty directory" in busy.output
    flat = env.run(["image", "render"], "--rootfs-only", image_id, str(tmp_path / "flat"))
    assert flat.exit_code == 0 and (tmp_path / "flat" / "data").read_text() == "x" * 10


def test_verify_rm_and_gc(env: ClientEnv, filled, tmp_path: Path) -> None:
    ok = env.run(["image", "verify"])
    assert ok.exit_code == 0 and ok.output.count(": ok") == 2
    # tamper with one stored file: verify names it and fails
    big = env.store().get(filled["example.com/big"])
    data = bytearray(big.path.read_bytes())
    data[-2000] ^= 1  # inside the data file's bytes (uncompressed archive)
    big.path.write_bytes(bytes(data))
    bad = env.run(["image", "verify"])
    assert bad.exit_code != 0 and "example.com/big: FAILED" in bad.output
    assert "example.com/small: ok" in bad.output

    removed = env.run(["image", "rm"], filled["example.com/big"][:25])
    assert removed.exit_code == 0 and filled["example.com/big"] in removed.output
    missing = env.run(["image", "rm"], "sha512-0000")
    assert missing.exit_code != 0 and "no image with ID" in missing.output

    kept = env.run(["image", "gc"], "--grace-period", "1h")
    assert kept.exit_code == 0 and len(env.store().list()) == 1
    gone = env.run(["image", "gc"], "--grace-period", "0s")
    assert gone.exit_code == 0 and env.store().list() == []
    assert not list((env.store_dir / "images").iterdir())


def test_rm_takes_a_name_and_version_like_export(env: ClientEnv, filled) -> None:
    wrong = env.run(["image", "rm"], "example.com/small:9")
    assert wrong.exit_code != 0 and 'no image "example.com/small:9"' in wrong.output
    assert "sha512-example.com" not in wrong.output
    removed = env.run(["image", "rm"], "example.com/small:1")
    assert removed.exit_code == 0, removed.output
    assert filled["example.com/small"] in removed.output
    [left] = env.store().list()
    assert left.name == "example.com/big"
    by_name = env.run(["image", "rm"], "example.com/big")
    assert by_name.exit_code == 0 and env.store().list() == []


def test_reading_commands_never_create_the_store(env: ClientEnv, tmp_path: Path) -> None:
    from click.testing import CliRunner

    from registry.cli.main import pyrkt

    absent = tmp_path / "no-store-here"
    listed = CliRunner().invoke(pyrkt, ["image", "list", "--dir", str(absent)])
    assert listed.exit_code == 0 and listed.output.split() == [
        "ID", "NAME", "SIZE", "IMPORT", "TIME", "LAST", "USED"]
    shown = CliRunner().invoke(pyrkt, ["image", "cat-manifest", "--dir", str(absent), "x.com/a"])
    assert shown.exit_code == 254 and 'no image "x.com/a"' in shown.output
    gc = CliRunner().invoke(pyrkt, ["image", "gc", "--dir", str(absent)])
    assert gc.exit_code == 0
    assert not absent.exists()


@pytest.mark.parametrize("command", [["fetch"], ["trust"], ["image"], ["image", "rm"],
                                     ["image", "list"], ["image", "export"], ["docker2aci"]])
def test_help_shows_examples(command: list[str]) -> None:
    from click.testing import CliRunner

    from registry.cli.main import pyrkt

    result = CliRunner().invoke(pyrkt, [*command, "--help"])
    assert result.exit_code == 0, result.output
    assert "Example" in result.output
    name = "docker2aci" if command == ["docker2aci"] else f"pyrkt {' '.join(command)}"
    assert f"  {name} " in result.output
