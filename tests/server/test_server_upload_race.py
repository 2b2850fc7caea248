"""A failed upload never deletes a blob an identical, concurrent upload is about to reference."""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

import pytest
from server_app import make_test_registry
from server_images import build_aci
from sqlalchemy.exc import OperationalError

from registry.server.services.actor import Actor
from registry.server.services.upload import UploadLimits, upload_image
from registry.server.storage import blob_key

NAME = "127.0.0.1/team/app"


class _PausingStorage:
    """The registry's storage, pausing right after `commit` until released (upload B)."""

    def __init__(self, real: Any) -> None:
        self._real = real
        self.committed = threading.Event()
        self.release = threading.Event()

    def __getattr__(self, name: str) -> Any:
        return getattr(self._real, name)

    def commit(self, upload: Any, key: str) -> Any:
        info = self._real.commit(upload, key)
        self.committed.set()
        assert self.release.wait(30)
        return info


def test_a_failed_commit_keeps_the_blob_an_identical_upload_is_committing(
        tmp_path: Path, registry_key_file: Path) -> None:
    registry = make_test_registry(tmp_path / "data", registry_key_file)
    assert registry.api("POST", "/repositories", json={"name": NAME}).status_code == 201
    aci = build_aci(tmp_path / "images", NAME)
    state = registry.app.extensions["pyrkt"]
    storage = state.storage
    limits = UploadLimits(max_upload=1 << 30)
    paused = _PausingStorage(storage)
    outcome: dict[str, Any] = {}

    def upload_b() -> None:
        session = state.sessions()
        try:
            with aci.open("rb") as body:
                outcome["b"] = upload_image(session, paused, Actor.operator(), NAME, body,
                                            domains=("127.0.0.1",), limits=limits)
        except BaseException as error:  # noqa: BLE001 - reported by the assertion below
            outcome["b"] = error
            paused.committed.set()
        finally:
            session.close()

    thread = threading.Thread(target=upload_b)
    session_a = state.sessions()
    real_commit = session_a.commit

    def failing_commit() -> None:
        # Upload A's rows fail (a lost connection, say) while upload B of the same file has
        # committed the blob but not yet its rows.
        session_a.rollback()
        thread.start()
        assert paused.committed.wait(30)
        raise OperationalError("COMMIT", None, Exception("connection lost (injected)"))

    session_a.commit = failing_commit  # type: ignore[method-assign]
    try:
        with aci.open("rb") as body, pytest.raises(OperationalError):
            upload_image(session_a, storage, Actor.operator(), NAME, body,
                         domains=("127.0.0.1",), limits=limits)
    finally:
        session_a.commit = real_commit  # type: ignore[method-assign]
        session_a.close()
        paused.release.set()
        if thread.is_alive() or thread.ident is not None:
            thread.join(30)
    result = outcome["b"]
    assert not isinstance(result, BaseException), result
    assert storage.exists(blob_key(result.digest))
    answer = registry.get("/_aci/127.0.0.1/team/app/1.0/linux/amd64/image.aci")
    assert answer.status_code == 200 and answer.data == aci.read_bytes()
