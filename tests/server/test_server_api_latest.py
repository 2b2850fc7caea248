"""What the JSON API reports agrees with the web UI and downloads (`latest`), says what to do
when a push targets a repository the pusher cannot see, and unknown repository pages are the
registry's own 404 page (the same for missing and private ones)."""

from __future__ import annotations

import pytest
from server_app import make_test_registry
from server_images import build_aci

NAME = "127.0.0.1/team/latest"
HOST = "http://127.0.0.1:8080"


@pytest.fixture
def registry(tmp_path, registry_key_file):  # type: ignore[no-untyped-def]
    return make_test_registry(tmp_path / "data", registry_key_file)


def _served_latest(registry, files) -> str:  # type: ignore[no-untyped-def]
    data = registry.get(f"/_aci/{NAME}/latest/linux/amd64/image.aci").data
    return next(version for version, path in files.items() if path.read_bytes() == data)


def _api_latest(registry) -> tuple[str | None, str | None]:  # type: ignore[no-untyped-def]
    one = registry.api("GET", f"/repositories/{NAME}").json
    listed = [r for r in registry.api("GET", "/repositories").json["repositories"]
              if r["name"] == NAME]
    assert listed[0]["latest"] == one["latest"]
    return one["latest"], one["latest_marked"]


def _ui_latest(registry) -> str:  # type: ignore[no-untyped-def]
    home = registry.get("/", headers={"Accept": "text/html"})
    assert home.status_code == 200
    text = home.get_data(as_text=True)
    return text.split(NAME, 1)[1].split("latest ", 1)[1].split()[0].split("<")[0]


def test_api_reports_the_latest_that_fetching_resolves(registry, tmp_path):
    files = {v: build_aci(tmp_path / v, NAME, version=v) for v in ("1.0", "2.0", "1.1")}
    created = registry.api("POST", "/repositories", json={"name": NAME})
    assert created.status_code == 201 and created.json["latest"] is None  # empty: nothing yet
    for version in ("1.0", "2.0", "1.1"):
        assert registry.upload(NAME, files[version]).status_code == 201
    # No mark: the newest push, as the UI shows and `:latest` serves.
    assert _api_latest(registry) == ("1.1", None)
    assert _served_latest(registry, files) == "1.1" == _ui_latest(registry)
    # The owner's mark.
    marked = registry.api("PUT", f"/repositories/{NAME}/-/latest", json={"version": "2.0"})
    assert marked.json["latest"] == "2.0" and marked.json["latest_marked"] == "2.0"
    assert _api_latest(registry) == ("2.0", "2.0")
    assert _served_latest(registry, files) == "2.0" == _ui_latest(registry)
    # The marked version deleted: back to the newest push.
    assert registry.api("DELETE", f"/repositories/{NAME}/-/versions/2.0").status_code == 200
    assert _api_latest(registry) == ("1.1", None)
    assert _served_latest(registry, files) == "1.1" == _ui_latest(registry)


def test_push_to_an_unseen_repository_says_who_creates_repositories(registry, tmp_path):
    assert registry.api("POST", "/users", json={"username": "dev",
                                                "password": "password-123"}).status_code == 201
    private = "127.0.0.1/team/private"
    assert registry.api("POST", "/repositories",
                        json={"name": private, "public": False}).status_code == 201
    token = registry.new_token("dev")
    answers = {}
    for name in ("127.0.0.1/team/new", private):
        image = build_aci(tmp_path / name.rsplit("/", 1)[1], name, version="1")
        for response in (registry.upload(name, image, token=token),
                         registry.api("GET", f"/repositories/{name}/-/upload", token=token)):
            assert response.status_code == 404, response.json
            error = response.json["error"]
            assert error["code"] == "repository-not-found"
            assert error["message"] == (
                f"repository {name} not found (or you cannot see it); an administrator "
                f"creates repositories: pyrkt-registry repo create {name}")
            answers.setdefault(name, set()).add(error["message"].replace(name, "NAME"))
    # The same answer whether the repository is missing or private: existence does not leak.
    assert len({frozenset(a) for a in answers.values()}) == 1


def test_unknown_repository_page_is_the_styled_404(registry, tmp_path):
    private = "127.0.0.1/demo/private"
    assert registry.api("POST", "/repositories",
                        json={"name": private, "public": False}).status_code == 201
    bodies = []
    for name in ("127.0.0.1/demo/nosuch", private):
        for accept in ("*/*", "text/html"):
            # 127.0.0.1 is the hosted domain: the path is the rest of the name.
            path = "/" + name.split("/", 1)[1]
            page = registry.client.get(path, base_url=HOST, headers={"Accept": accept})
            assert page.status_code == 404
            text = page.get_data(as_text=True)
            assert f"No repository {name} here." in text and "Browse the repositories" in text
            assert "<!doctype html>" in text.lower() and "Not found" in text
            bodies.append(text.replace(name, "NAME").replace(path, "/PATH"))
    assert len(set(bodies)) == 1


def test_login_page_says_when_the_password_was_printed(registry):
    page = registry.client.get("/_ui/login", base_url=HOST).get_data(as_text=True)
    assert "printed once when the registry was first started" in page
    assert "pyrkt-registry init</code> or <code>serve" in page
