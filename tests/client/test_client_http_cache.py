"""HTTP caching, resuming and concurrency of `pyrkt fetch` against a small http.server handler.

The server (client_kit.FileServer) is plain HTTP on 127.0.0.1, so these fetches pass
`--insecure-options=http`; signatures are still checked.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from client_kit import ClientEnv, FileServer, build_aci, discovery_page, host_labels

HOST = "127.0.0.1"
NAME = f"{HOST}/cache/app"
HTTP = ("--insecure-options", "http")


@pytest.fixture()
def served(tmp_path: Path, env: ClientEnv, trusted_key):
    root = tmp_path / "files"
    # incompressible content, so the download is big enough to be cut in the middle
    image_id = build_aci(root / "app.aci", NAME, host_labels(), {"blob": os.urandom(1 << 20)},
                         key=trusted_key)
    env.trust_key(trusted_key, NAME)
    return root, image_id


def _fetch(env: ClientEnv, *args: str):
    return env.run(["fetch"], *HTTP, "--full", *args)


def _last_line(output: str) -> str:
    return output.strip().splitlines()[-1]


def test_304_revalidation_keeps_the_stored_copy(served, env: ClientEnv) -> None:
    root, image_id = served
    with FileServer(root) as server:
        first = _fetch(env, f"{server.url}/app.aci")
        assert first.exit_code == 0, first.output
        assert _last_line(first.output) == image_id
        again = _fetch(env, "--pull-policy", "update", f"{server.url}/app.aci")
        assert again.exit_code == 0, again.output
        assert _last_line(again.output) == image_id
        assert "not modified (HTTP 304)" in again.output
    image_requests = [headers for path, headers in server.requests if path == "/app.aci"]
    assert len(image_requests) == 2
    assert "If-None-Match" not in image_requests[0]
    assert image_requests[1]["If-None-Match"].startswith('"')
    assert len(env.store().list()) == 1


def test_max_age_answers_from_the_cache_without_asking(served, env: ClientEnv) -> None:
    root, image_id = served
    with FileServer(root, max_age=3600) as server:
        assert _fetch(env, f"{server.url}/app.aci").exit_code == 0
        asked = len(server.requests)
        again = _fetch(env, "--pull-policy", "update", f"{server.url}/app.aci")
        assert again.exit_code == 0, again.output
        assert _last_line(again.output) == image_id
        assert len(server.requests) == asked  # nothing asked: still fresh
        assert "fresh for" in again.output


def test_cache_hit_with_the_server_stopped(served, env: ClientEnv) -> None:
    root, image_id = served
    with FileServer(root) as server:
        (root / "cache").mkdir()
        (root / "cache" / "app").write_text(discovery_page(
            ("ac-discovery", NAME, f"{server.url}/app.{{ext}}")))
        env.domain_config(HOST, port=server.port)
        first = _fetch(env, NAME)
        assert first.exit_code == 0, first.output
    # the server is gone: the stored image answers, by name and by ID
    by_name = _fetch(env, NAME)
    assert by_name.exit_code == 0, by_name.output
    assert _last_line(by_name.output) == image_id
    never = _fetch(env, "--pull-policy", "never", f"{NAME}:1.0.0")
    assert never.exit_code == 0 and _last_line(never.output) == image_id
    missing = _fetch(env, "--pull-policy", "never", f"{NAME}:2.0.0")
    assert missing.exit_code != 0 and "--pull-policy=never" in missing.output


def test_resume_after_the_connection_drops_mid_download(served, env: ClientEnv) -> None:
    root, image_id = served
    size = (root / "app.aci").stat().st_size
    env.store()
    before = env.snapshot()
    with FileServer(root) as server:
        server.drop_after["/app.aci"] = size // 3
        cut = _fetch(env, f"{server.url}/app.aci")
        assert cut.exit_code != 0
        assert "interrupted" in cut.output and "resume" in cut.output
        assert env.snapshot() == before  # nothing imported
        resumed = _fetch(env, f"{server.url}/app.aci")
        assert resumed.exit_code == 0, resumed.output
        assert _last_line(resumed.output) == image_id
    second = [headers for path, headers in server.requests if path == "/app.aci"][1]
    assert second["Range"] == f"bytes={size // 3}-"
    assert env.store().get(image_id).path.read_bytes() == (root / "app.aci").read_bytes()
    assert not list((env.store_dir / "tmp").iterdir())


def test_signature_202_is_asked_again_after_the_download(served, env: ClientEnv) -> None:
    root, image_id = served
    with FileServer(root) as server:
        server.accepted_first["/app.aci.asc"] = 2
        result = _fetch(env, f"{server.url}/app.aci")
        assert result.exit_code == 0, result.output
        assert _last_line(result.output) == image_id
    assert server.paths() == ["/app.aci.asc", "/app.aci", "/app.aci.asc", "/app.aci.asc"]
    assert env.store().get(image_id).has_signature


def test_two_concurrent_fetches_store_one_copy(served, env: ClientEnv) -> None:
    root, image_id = served
    with FileServer(root) as server:
        command = [sys.executable, "-m", "registry.cli.main", "fetch", *env.flags(), *HTTP,
                   "--full", f"{server.url}/app.aci"]
        procs = [subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                  text=True) for _ in range(2)]
        outputs = [proc.communicate(timeout=120) for proc in procs]
    for proc, (out, err) in zip(procs, outputs, strict=True):
        assert proc.returncode == 0, err
        assert out.strip() == image_id
    assert [i.id for i in env.store().list()] == [image_id]
    assert len(list((env.store_dir / "images").glob("*.aci"))) == 1


def test_progress_bar_on_a_terminal_none_when_piped(served, env: ClientEnv) -> None:
    import pty

    root, image_id = served
    with FileServer(root) as server:
        command = [sys.executable, "-m", "registry.cli.main", "fetch", *env.flags(), *HTTP,
                   f"{server.url}/app.aci"]
        controller, terminal = pty.openpty()
        proc = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=terminal)
        os.close(terminal)
        seen = b""
        while True:
            try:
                data = os.read(controller, 65536)
            except OSError:  # EIO: the other side closed
                break
            if not data:
                break
            seen += data
        out, _ = proc.communicate(timeout=120)
        os.close(controller)
        assert proc.returncode == 0, seen.decode(errors="replace")
        assert out.decode().strip() == image_id[:39]
        assert b"app.aci [" in seen and b"\r" in seen and b"MiB" in seen
        env.run(["image", "rm"], image_id)
        piped = env.run(["fetch"], *HTTP, "--pull-policy", "update", f"{server.url}/app.aci")
        assert piped.exit_code == 0 and "\r" not in piped.output and "[" not in piped.output


def test_url_signed_by_an_unknown_key_is_refused_before_the_download(
        served, env: ClientEnv, stranger_key) -> None:
    from client_kit import sign

    root, _ = served
    sign(stranger_key, root / "app.aci")
    env.store()
    before = env.snapshot()
    with FileServer(root) as server:
        result = _fetch(env, f"{server.url}/app.aci")
    assert result.exit_code != 0
    assert "not trusted for any image name" in result.output and "pyrkt trust" in result.output
    assert server.paths() == ["/app.aci.asc"]
    assert env.snapshot() == before


def _helpers() -> tuple[list[str], list[int]]:
    """The fetch pipeline's threads still alive, and the verifier processes still running."""
    import threading

    names = sorted(t.name for t in threading.enumerate()
                   if t.name in ("verify-feed", "write-behind", "aci-inflate", "aci-sha512"))
    workers = []
    for entry in Path("/proc").iterdir():
        try:
            if entry.name.isdigit() and b"_worker.py" in (entry / "cmdline").read_bytes() \
                    and int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1]) \
                    == os.getpid():
                workers.append(int(entry.name))
        except (OSError, ValueError, IndexError):
            pass
    return names, workers


def test_every_helper_of_the_pipeline_ends_with_the_fetch(served, env: ClientEnv,
                                                          trusted_key) -> None:
    """The download, the signature check's feed and process, inflating and hashing run beside
    each other; whether the fetch succeeds, is refused or is cut off, none of them outlives
    it and the store holds only what was verified."""
    root, image_id = served
    before = _helpers()
    big = build_aci(root / "big.aci", NAME, host_labels("2.0"),
                    {"blob": os.urandom(40 << 20)}, key=trusted_key)  # past a write-behind step
    signature = (root / "app.aci.asc").read_bytes()
    (root / "tampered.aci").write_bytes((root / "big.aci").read_bytes())
    (root / "tampered.aci.asc").write_bytes(signature)  # the signature of another file
    with FileServer(root) as server:
        ok = _fetch(env, f"{server.url}/big.aci")
        assert ok.exit_code == 0, ok.output
        assert _last_line(ok.output) == big
        assert _helpers() == before
        refused = _fetch(env, f"{server.url}/tampered.aci")
        assert refused.exit_code != 0
        assert "signature does not verify" in refused.output
        assert _helpers() == before
        server.drop_after["/app.aci"] = (root / "app.aci").stat().st_size // 2
        cut = _fetch(env, f"{server.url}/app.aci")
        assert cut.exit_code != 0 and "interrupted" in cut.output
        assert _helpers() == before
    assert [image.id for image in env.store().list()] == [big]
    assert env.store().get(big).path.read_bytes() == (root / "big.aci").read_bytes()
    assert [p.name for p in (env.store_dir / "tmp").iterdir()
            if not p.name.startswith("partial-")] == []  # only the resumable partial file
