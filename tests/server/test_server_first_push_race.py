"""Two first pushes into one new repository at the same moment, on a live registry (gunicorn,
several workers; SQLite, and PostgreSQL when CI provides it): both succeed and share the one
repository row, through the JSON API (an administrator's upload) and through /v2/ (OCI)."""

from __future__ import annotations

import hashlib
import threading
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import requests
from live_registry import LiveRegistry
from server_images import build_aci

pytestmark = [pytest.mark.e2e]

ROUNDS = 8


@pytest.fixture(scope="module", params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def live(request: pytest.FixtureRequest,
         tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveRegistry]:
    database = request.getfixturevalue("new_postgres_database")() \
        if request.param == "postgres" else None
    with LiveRegistry(tmp_path_factory.mktemp(f"first-push-{request.param}"),
                      database_url=database, workers=4) as registry:
        yield registry


def _together(*calls: Callable[[], requests.Response]) -> list[requests.Response]:
    """Run the calls in threads released at the same moment; their responses in order."""
    barrier = threading.Barrier(len(calls))
    answers: list[requests.Response | BaseException | None] = [None] * len(calls)

    def run(index: int) -> None:
        barrier.wait(30)
        try:
            answers[index] = calls[index]()
        except BaseException as error:  # noqa: BLE001 - re-raised below
            answers[index] = error

    threads = [threading.Thread(target=run, args=(i,)) for i in range(len(calls))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(120)
    for answer in answers:
        if not isinstance(answer, requests.Response):
            raise AssertionError(f"a request failed: {answer!r}")
    return answers  # type: ignore[return-value]


def test_concurrent_first_uploads_into_a_new_repository(live: LiveRegistry, tmp_path: Path) -> None:
    for round_ in range(ROUNDS):
        name = f"127.0.0.1/race/native{round_}"
        images = [build_aci(tmp_path / name, name, version=v).read_bytes() for v in ("1.0", "2.0")]

        def push(name: str, data: bytes) -> Callable[[], requests.Response]:
            return lambda: live.api("POST", f"/repositories/{name}/-/images", data=data,
                                    headers={"Content-Type": "application/octet-stream"})

        answers = _together(*(push(name, data) for data in images))
        assert [a.status_code for a in answers] == [201, 201], [a.text for a in answers]
        listed = live.api("GET", f"/repositories/{name}")
        assert sorted(i["version"] for i in listed.json()["images"]) == ["1.0", "2.0"]
    assert "Traceback" not in live.log()


def test_concurrent_first_oci_pushes_into_a_new_repository(live: LiveRegistry) -> None:
    headers = {"Authorization": f"Bearer {live.token}"}
    for round_ in range(ROUNDS):
        name = f"race/oci{round_}"
        blobs = [f"layer {round_} {i}".encode() * 1000 for i in range(2)]
        digests = ["sha256:" + hashlib.sha256(blob).hexdigest() for blob in blobs]

        def push(name: str, data: bytes, digest: str) -> Callable[[], requests.Response]:
            return lambda: requests.post(live.url(f"/v2/{name}/blobs/uploads/"),
                                         params={"digest": digest}, data=data, headers=headers,
                                         timeout=60)

        answers = _together(*(push(name, data, digest)
                              for data, digest in zip(blobs, digests, strict=True)))
        assert [a.status_code for a in answers] == [201, 201], [a.text for a in answers]
        for digest in digests:
            found = requests.head(live.url(f"/v2/{name}/blobs/{digest}"), headers=headers,
                                  timeout=60)
            assert found.status_code == 200
    assert "Traceback" not in live.log()
