"""Webhooks: signed JSON deliveries, retries with backoff against a receiver that fails twice,
the delivery log, event filters, and a slow or dead receiver never slowing a push."""

from __future__ import annotations

import hashlib
import hmac
import json
import time

import pytest
from live_registry import LiveRegistry, free_port
from server_app import make_test_registry
from server_images import build_aci
from webhook_receiver import Receiver

from registry.server.operations.webhooks import deliver_due

NAME = "127.0.0.1/demo/hooked"


def _sessions(registry):  # type: ignore[no-untyped-def]
    return registry.app.extensions["pyrkt"].sessions


def _deliver_until(registry, done, timeout: float = 20.0):  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        deliver_due(_sessions(registry), retry_base=0.1, timeout=5)
        if done():
            return
        time.sleep(0.05)
    raise AssertionError("deliveries did not finish in time")


def test_push_is_delivered_signed_after_two_failures(tmp_path, registry_key_file):
    registry = make_test_registry(tmp_path / "data", registry_key_file)
    with Receiver(fail_first=2) as receiver:
        made = registry.api("POST", "/webhooks", json={"url": receiver.url, "events": ["push"],
                                                      "description": "ci"})
        assert made.status_code == 201, made.get_json()
        hook = made.get_json()
        assert len(hook["secret"]) >= 32
        assert "secret" not in registry.api("GET", f"/webhooks/{hook['id']}").get_json()
        pushed = registry.upload(NAME, build_aci(tmp_path, NAME, version="1.0"))
        assert pushed.status_code == 201
        # Nothing was sent during the push: the delivery waits in the outbox.
        assert receiver.received == []
        log = registry.api("GET", f"/webhooks/{hook['id']}/deliveries").get_json()["deliveries"]
        assert [(d["event"], d["status"], d["attempts"]) for d in log] == [("push", "pending", 0)]

        def delivered() -> bool:
            rows = registry.api("GET", f"/webhooks/{hook['id']}/deliveries").get_json()
            return rows["deliveries"][0]["status"] == "delivered"

        _deliver_until(registry, delivered)
    assert len(receiver.received) == 3
    row = registry.api("GET", f"/webhooks/{hook['id']}/deliveries").get_json()["deliveries"][0]
    assert row["attempts"] == 3 and row["last_status_code"] == 200
    assert [a["status"] for a in row["attempt_log"]] == [500, 500, 200]
    # Backoff: the second retry waited about twice as long as the first.
    first, second, third = (r.at for r in receiver.received)
    assert second - first >= 0.1 and third - second >= 0.2
    for request in receiver.received:
        expected = "sha256=" + hmac.new(hook["secret"].encode(), request.body,
                                        hashlib.sha256).hexdigest()
        assert request.headers["X-Pyrkt-Signature"] == expected
        assert request.headers["X-Pyrkt-Event"] == "push"
        assert request.headers["X-Pyrkt-Delivery"] == str(row["id"])
    payload = json.loads(receiver.received[-1].body)
    assert payload["event"] == "push" and payload["repository"] == NAME
    assert payload["target"] == f"{NAME}:1.0" and payload["actor"] == "admin"
    assert payload["details"]["image_id"].startswith("sha512-")


def test_events_and_repository_filters(tmp_path, registry_key_file):
    registry = make_test_registry(tmp_path / "data", registry_key_file)
    other = "127.0.0.1/demo/other"
    for name in (NAME, other):
        assert registry.api("POST", "/repositories", json={"name": name}).status_code == 201
    with Receiver() as everything, Receiver() as deletes:
        assert registry.api("POST", "/webhooks", json={"url": everything.url,
                                                      "events": ["push", "delete"]}).status_code == 201
        assert registry.api("POST", "/webhooks", json={
            "url": deletes.url, "events": ["delete"], "repository": NAME}).status_code == 201
        assert registry.upload(NAME, build_aci(tmp_path, NAME, version="1.0")).status_code == 201
        assert registry.upload(other, build_aci(tmp_path, other, version="1.0")).status_code == 201
        assert registry.api("DELETE", f"/repositories/{other}/-/versions/1.0").status_code == 200
        assert registry.api("DELETE", f"/repositories/{NAME}/-/versions/1.0").status_code == 200
        _deliver_until(registry, lambda: len(everything.received) == 4 and len(deletes.received) == 1)
        kinds = sorted((json.loads(r.body)["event"], json.loads(r.body)["repository"])
                       for r in everything.received)
        assert kinds == sorted([("delete", other), ("delete", NAME), ("push", other), ("push", NAME)])
        assert json.loads(deletes.received[0].body)["target"] == f"{NAME}:1.0"


def test_bad_hooks_are_refused(tmp_path, registry_key_file):
    registry = make_test_registry(tmp_path / "data", registry_key_file)
    bad_url = registry.api("POST", "/webhooks", json={"url": "ftp://x/"})
    assert bad_url.status_code == 400 and "http(s)" in bad_url.get_json()["error"]["message"]
    bad_event = registry.api("POST", "/webhooks", json={"url": "http://127.0.0.1:9/",
                                                        "events": ["pull"]})
    assert bad_event.status_code == 400 and "not pull" in bad_event.get_json()["error"]["message"]
    assert registry.api("GET", "/webhooks", token=None).status_code == 401


def test_a_failed_push_notifies_nobody(tmp_path, registry_key_file):
    registry = make_test_registry(tmp_path / "data", registry_key_file)
    with Receiver() as receiver:
        made = registry.api("POST", "/webhooks", json={"url": receiver.url}).get_json()
        refused = registry.upload(NAME, b"not an aci")
        assert refused.status_code == 400
        assert registry.api("GET", f"/webhooks/{made['id']}/deliveries").get_json() == {
            "deliveries": []}


@pytest.mark.e2e
def test_slow_and_dead_receivers_never_slow_a_push(tmp_path):
    """Two gunicorn workers, their dispatchers, a receiver that takes 3 s and one that is dead."""
    with Receiver(delay=3.0) as slow, LiveRegistry(
            tmp_path / "data", env={"PYRKT_REGISTRY_WEBHOOK_RETRY_BASE": "0.2",
                                    "PYRKT_REGISTRY_WEBHOOK_TIMEOUT": "5"}) as registry:
        name = "127.0.0.1/demo/fast"
        baseline = []
        for number in range(3):  # pushes with no hook, for comparison in the same run
            aci = build_aci(tmp_path / "images", name, version=f"0.{number}")
            started = time.monotonic()
            answer = registry.api("POST", f"/repositories/{name}/-/images",
                                  data=aci.read_bytes())
            baseline.append(time.monotonic() - started)
            assert answer.status_code == 201, answer.text
        dead = f"http://127.0.0.1:{free_port()}/nobody-listens"
        assert registry.api("POST", "/webhooks", json={"url": slow.url}).status_code == 201
        assert registry.api("POST", "/webhooks", json={"url": dead}).status_code == 201
        timed = []
        for number in range(3):
            aci = build_aci(tmp_path / "images", name, version=f"1.{number}")
            started = time.monotonic()
            answer = registry.api("POST", f"/repositories/{name}/-/images",
                                  data=aci.read_bytes())
            timed.append(time.monotonic() - started)
            assert answer.status_code == 201, answer.text
        # A push waits for no receiver: well under the slow receiver's 3 s.
        assert max(timed) < 1.5, (timed, baseline)
        received = slow.wait_for(3, timeout=30)
        assert len(received) == 3, registry.log()
        assert sorted(json.loads(r.body)["target"] for r in received) == [
            f"{name}:1.{n}" for n in range(3)]
        hooks = registry.api("GET", "/webhooks").json()["webhooks"]
        dead_id = next(h["id"] for h in hooks if h["url"] == dead)
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            rows = registry.api("GET", f"/webhooks/{dead_id}/deliveries").json()["deliveries"]
            if rows and all(r["attempts"] >= 2 for r in rows):
                break
            time.sleep(0.2)
        assert len(rows) == 3 and all(r["status"] == "pending" and r["attempts"] >= 2
                                      and "ConnectionError" in r["last_error"] for r in rows)
        # Exactly one delivery per event although two workers dispatch.
        time.sleep(1)
        assert len(slow.received) == 3
