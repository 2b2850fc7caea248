"""Scoped, expiring tokens and robot accounts; pull counts; every version in the API; audit
filters and exports; full image names in the path; Markdown descriptions (in-process)."""

from __future__ import annotations

import base64
import csv
import io
import json
from datetime import timedelta

import pytest
from server_app import make_test_registry
from server_images import build_aci
from sqlalchemy import select, update

from registry.server.models import ApiToken, AuditEvent, utcnow

NAME = "127.0.0.1/team/app"
OTHER = "127.0.0.1/team/other"
SECRET = "127.0.0.1/team/secret"


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def registry(request, tmp_path, registry_key_file):  # type: ignore[no-untyped-def]
    """SQLite and PostgreSQL: the upserts of pull counts and the conditional last-use write
    are dialect-specific SQL."""
    settings = {}
    if request.param == "postgres":
        settings["database_url"] = request.getfixturevalue("new_postgres_database")()
    registry = make_test_registry(tmp_path / "data", registry_key_file, **settings)
    for name, public in ((NAME, True), (OTHER, True), (SECRET, False)):
        created = registry.api("POST", "/repositories", json={"name": name, "public": public})
        assert created.status_code == 201, created.json
    return registry


def token_for(registry, user: str, **fields) -> str:  # type: ignore[no-untyped-def]
    answer = registry.api("POST", f"/users/{user}/tokens", json=fields)
    assert answer.status_code == 201, answer.json
    return answer.json["token"]


def add_user(registry, name: str, *, admin: bool = False) -> None:  # type: ignore[no-untyped-def]
    answer = registry.api("POST", "/users", json={"username": name, "password": f"{name}-pw-123",
                                                  "admin": admin})
    assert answer.status_code == 201, answer.json


def test_read_token_reads_but_cannot_push_or_change(registry, tmp_path):
    add_user(registry, "alice")
    assert registry.api("PUT", f"/repositories/{SECRET}/-/roles/alice",
                        json={"role": "admin"}).status_code == 200
    read = token_for(registry, "alice", scope="read")
    image = build_aci(tmp_path, SECRET, version="1.0")
    refused = registry.upload(SECRET, image, token=read)
    assert refused.status_code == 403 and "write role" in refused.json["error"]["message"]
    assert registry.api("PATCH", f"/repositories/{SECRET}", token=read,
                        json={"public": True}).status_code == 403
    # Reading the private repository works: alice's role is admin, the scope caps it at read.
    assert registry.api("GET", f"/repositories/{SECRET}", token=read).status_code == 200
    # A push token pushes, but still cannot change settings.
    push = token_for(registry, "alice", scope="push")
    assert registry.upload(SECRET, image, token=push).status_code == 201
    assert registry.api("PATCH", f"/repositories/{SECRET}", token=push,
                        json={"public": True}).status_code == 403
    admin = token_for(registry, "alice", scope="admin")
    assert registry.api("PATCH", f"/repositories/{SECRET}", token=admin,
                        json={"description": "ok"}).status_code == 200


def test_repository_token_touches_no_other_repository(registry, tmp_path):
    token = token_for(registry, "admin", scope="push", repository=NAME)
    assert registry.upload(NAME, build_aci(tmp_path / "a", NAME, version="1.0"),
                           token=token).status_code == 201
    # Another public repository: readable (as to anyone), not writable.
    other = registry.upload(OTHER, build_aci(tmp_path / "b", OTHER, version="1.0"), token=token)
    assert other.status_code == 403
    # A private one does not exist for this token, even though its user is an administrator.
    assert registry.api("GET", f"/repositories/{SECRET}", token=token).status_code == 404
    listed = [r["name"] for r in registry.api("GET", "/repositories", token=token).json[
        "repositories"]]
    assert SECRET not in listed and NAME in listed
    # Nor can it do what only a full administrator may.
    assert registry.api("POST", "/users", token=token,
                        json={"username": "mallory", "password": "mallory-pw-1"}).status_code == 403
    assert registry.api("POST", "/users/admin/tokens", token=token, json={}).status_code == 403
    assert registry.api("GET", "/audit", token=token).status_code == 403
    new = registry.api("POST", "/repositories", token=token, json={"name": "127.0.0.1/team/x"})
    assert new.status_code == 403


def test_expired_and_revoked_tokens_are_refused(registry):
    token = token_for(registry, "admin", scope="read", expires_in_days=1)
    assert registry.api("GET", "/whoami", token=token).status_code == 200
    with registry.session() as session:
        session.execute(update(ApiToken).where(ApiToken.scope == "read")
                        .values(expires_at=utcnow() - timedelta(seconds=1)))
        session.commit()
    expired = registry.api("GET", "/whoami", token=token)
    assert expired.status_code == 401 and "expired" in expired.json["error"]["message"]
    listed = registry.api("GET", "/users/admin/tokens").json["tokens"]
    assert {t["scope"]: t["state"] for t in listed}["read"] == "expired"
    never = registry.api("POST", "/users/admin/tokens", json={"expires_in_days": "never"})
    assert never.status_code == 201 and never.json["expires"] is None
    bad = registry.api("POST", "/users/admin/tokens", json={"expires_in_days": 99999})
    assert bad.status_code == 400 and bad.json["error"]["code"] == "bad-expiry"
    wrong_scope = registry.api("POST", "/users/admin/tokens", json={"scope": "root"})
    assert wrong_scope.status_code == 400 and wrong_scope.json["error"]["code"] == "bad-scope"
    revoked = never.json["token"]
    assert registry.api("DELETE", f"/tokens/{never.json['id']}").status_code == 200
    assert registry.api("GET", "/whoami", token=revoked).status_code == 401


def test_last_use_is_written_at_most_once_a_minute(registry):
    token = token_for(registry, "admin", scope="read")

    def used():  # type: ignore[no-untyped-def]
        listed = registry.api("GET", "/users/admin/tokens").json["tokens"]
        return next((t["last_used"], t["last_used_from"]) for t in listed if t["scope"] == "read")

    assert used() == (None, None)
    registry.api("GET", "/whoami", token=token, environ_base={"REMOTE_ADDR": "127.0.0.7"})
    first = used()
    assert first[0] is not None and first[1] == "127.0.0.7"
    for _ in range(5):
        registry.api("GET", "/whoami", token=token, environ_base={"REMOTE_ADDR": "127.0.0.8"})
    assert used() == first  # within the minute: no write at all
    with registry.session() as session:
        session.execute(update(ApiToken).where(ApiToken.scope == "read")
                        .values(last_used_at=utcnow() - timedelta(minutes=2)))
        session.commit()
    registry.api("GET", "/whoami", token=token, environ_base={"REMOTE_ADDR": "127.0.0.9"})
    later = used()
    assert later[1] == "127.0.0.9" and later[0] > first[0]


def test_oci_bearer_tokens_honour_the_api_token_scope(registry):
    read = token_for(registry, "admin", scope="read", repository=NAME)
    basic = base64.b64encode(f"admin:{read}".encode()).decode()
    answer = registry.get("/v2/token", headers={"Authorization": f"Basic {basic}"},
                          query_string={"service": "127.0.0.1:8080",
                                        "scope": ["repository:team/app:pull,push",
                                                  "repository:team/secret:pull"]})
    assert answer.status_code == 200, answer.json
    bearer = answer.json["token"]
    payload = json.loads(base64.urlsafe_b64decode(bearer.split(".")[1] + "=="))
    assert payload["access"] == {"team/app": ["pull"]}
    headers = {"Authorization": f"Bearer {bearer}"}
    push = registry.client.post("/v2/team/app/blobs/uploads/", headers=headers,
                                base_url="http://127.0.0.1:8080")
    assert push.status_code == 401
    assert registry.get("/v2/team/app/tags/list", headers=headers).status_code in (200, 404)
    # Revoking the API token ends the bearer token at once, not when it expires.
    token_id = next(t["id"] for t in registry.api("GET", "/users/admin/tokens").json["tokens"]
                    if t["scope"] == "read")
    assert registry.api("DELETE", f"/tokens/{token_id}").status_code == 200
    gone = registry.get("/v2/team/app/tags/list", headers=headers)
    assert gone.status_code == 401 and "revoked" in gone.json["errors"][0]["message"]


def test_robot_accounts_have_tokens_and_roles_but_no_password(registry, tmp_path):
    created = registry.api("POST", "/robots", json={"name": "ci-app", "description": "CI"})
    assert created.status_code == 201, created.json
    assert registry.api("POST", "/robots", json={"name": "ci-app"}).status_code == 409
    assert registry.api("PUT", f"/repositories/{SECRET}/-/roles/ci-app",
                        json={"role": "write"}).status_code == 200
    robot = registry.api("GET", "/robots/ci-app").json
    assert robot["roles"] == [{"repository": SECRET, "role": "write"}]
    token = token_for(registry, "ci-app", scope="push", repository=SECRET)
    assert registry.upload(SECRET, build_aci(tmp_path, SECRET, version="3.0"),
                           token=token).status_code == 201
    assert registry.upload(NAME, build_aci(tmp_path / "n", NAME, version="3.0"),
                           token=token).status_code == 403
    # No password: Basic with any password fails; the token as Basic password works.
    for password in ("", "anything-at-all", "!robot: tokens only"):
        basic = base64.b64encode(f"ci-app:{password}".encode()).decode()
        assert registry.api("GET", "/whoami", token=None,
                            headers={"Authorization": f"Basic {basic}"}).status_code == 401
    basic = base64.b64encode(f"ci-app:{token}".encode()).decode()
    assert registry.api("GET", "/whoami", token=None,
                        headers={"Authorization": f"Basic {basic}"}).json["username"] == "ci-app"
    assert registry.api("GET", "/users").json["users"][0]["username"] == "admin"
    assert "ci-app" not in [u["username"] for u in registry.api("GET", "/users").json["users"]]
    # A robot's token cannot mint tokens, even for itself.
    assert registry.api("POST", "/users/ci-app/tokens", token=token, json={}).status_code == 403
    audit = registry.api("GET", "/audit", query_string={"user": "ci-app"}).json["events"]
    assert audit[0]["actor_kind"] == "robot" and audit[0]["action"] == "image.upload"
    assert registry.api("DELETE", "/robots/ci-app").status_code == 200
    assert registry.api("GET", "/whoami", token=token).status_code == 401


def test_pulls_are_counted_without_ranges_heads_or_revalidations(registry, tmp_path):
    image = build_aci(tmp_path, NAME, version="1.0")
    assert registry.upload(NAME, image).status_code == 201
    url = f"/_aci/{NAME}/1.0/linux/amd64/image.aci"
    first = registry.get(url)
    assert first.status_code == 200
    registry.get(url)
    registry.get(f"/_aci/{NAME}/latest/linux/amd64/image.aci")  # counts for 1.0
    registry.client.head(url, base_url="http://127.0.0.1:8080")
    registry.get(url, headers={"Range": "bytes=10-"})  # a resumed download
    registry.get(url, headers={"If-None-Match": first.headers["ETag"]})
    registry.get(url.replace("image.aci", "image.aci.asc"))
    registry.app.extensions["pyrkt"].pulls.flush()
    counted = registry.api("GET", f"/repositories/{NAME}/-/pulls").json
    assert counted["total"] == 3 and counted["versions"] == {"1.0": 3}
    assert len(counted["days"]) == 90 and counted["days"][-1]["pulls"] == 3
    versions = registry.api("GET", f"/repositories/{NAME}").json["versions"]
    assert [(v["version"], v["pulls"], v["state"]) for v in versions] == [("1.0", 3, "ready")]


def test_audit_filters_and_exports(registry, tmp_path):
    assert registry.upload(NAME, build_aci(tmp_path, NAME, version="1.0")).status_code == 201
    events = registry.api("GET", "/audit", query_string={"repository": NAME}).json["events"]
    assert {e["action"] for e in events} == {"repository.create", "image.upload"}
    assert all(e["target"] in (NAME, f"{NAME}:1.0") for e in events)
    family = registry.api("GET", "/audit", query_string={"action": "repository"}).json["events"]
    assert {e["target"] for e in family} == {NAME, OTHER, SECRET}
    exported = registry.api("GET", "/audit", query_string={"format": "csv", "user": "admin"})
    assert exported.mimetype == "text/csv"
    rows = list(csv.DictReader(io.StringIO(exported.get_data(as_text=True))))
    assert rows and {r["actor"] for r in rows} == {"admin"}
    upload = next(r for r in rows if r["action"] == "image.upload")
    assert json.loads(upload["details"])["digest"].startswith("sha256:")
    as_json = registry.api("GET", "/audit", query_string={"format": "json"}).json["events"]
    assert len(as_json) == len(registry.api("GET", "/audit").json["events"])
    assert registry.api("GET", "/audit", query_string={"format": "xml"}).status_code == 400
    with registry.session() as session:
        kinds = set(session.scalars(select(AuditEvent.actor_kind)).all())
    assert kinds == {"operator", "user"}


def test_a_full_image_name_in_the_path_redirects_to_the_repository(registry):
    answer = registry.get("/127.0.0.1/team/app", headers={"Accept": "text/html"})
    assert answer.status_code == 302 and answer.headers["Location"] == "/team/app"
    # Listings too; nothing for names that are not hosted, nor for a private one's outsiders
    # beyond what its own URL answers.
    assert registry.get("/127.0.0.1/team").headers["Location"] == "/team"
    assert registry.get("/example.org/team/x").status_code == 404
    target = registry.get("/127.0.0.1/team/secret").headers["Location"]
    assert registry.get(target).status_code == 404
    # Discovery is untouched: it answers for the name as given.
    discovery = registry.get("/127.0.0.1/team/app?ac-discovery=1")
    assert discovery.status_code == 200 and b"127.0.0.1/127.0.0.1/team/app" in discovery.data


def test_descriptions_render_markdown_without_raw_html(registry):
    text = ("# Hello\n\n**bold** and `code`\n\n<script>alert(1)</script>\n\n"
            "[click](javascript:alert(2)) <img src=x onerror=alert(3)>\n\n[ok](https://a.example)")
    assert registry.api("PATCH", f"/repositories/{NAME}",
                        json={"description": text}).status_code == 200
    rendered = registry.api("GET", f"/repositories/{NAME}").json["description_html"]
    assert "<strong>bold</strong>" in rendered and "<code>code</code>" in rendered
    assert "<script" not in rendered and "<img" not in rendered
    assert "javascript:" not in rendered.replace("[click](javascript:alert(2))", "")
    assert 'href="https://a.example"' in rendered
    page = registry.get("/team/app").get_data(as_text=True)
    assert "<h1>Hello</h1>" in page and "<script>alert(1)" not in page


def test_commands_have_the_flags_the_base_url_needs_and_no_others():
    from registry.server.ui.commands import fetch_command, trust_command, version_commands

    def tools(base_url: str, oci: str | None = "team/app") -> dict[str, str]:
        return {c.tool: c.line + (f"  # {c.note}" if c.note and c.tool == "docker" else "")
                for c in version_commands(base_url, NAME, "1.0", "linux", "amd64", oci)}

    # HTTPS on the default port: no flag at all; appc names discovered as they are.
    secure = tools("https://127.0.0.1")
    assert secure["pyrkt fetch"] == f"pyrkt fetch {NAME}:1.0"
    assert secure["pyrkt run"] == f"pyrkt run {NAME}:1.0"
    assert secure["rkt fetch"] == f"rkt fetch {NAME}:1.0"
    assert secure["skopeo"] == "skopeo copy docker://127.0.0.1/team/app:1.0 oci:app:1.0"
    assert secure["docker"] == "docker pull 127.0.0.1/team/app:1.0"
    assert trust_command("https://127.0.0.1", NAME) == f"pyrkt trust --prefix {NAME}"
    # HTTPS on another port: the port, never an insecure option.
    port = tools("https://127.0.0.1:8443")
    assert port["pyrkt fetch"] == f"pyrkt fetch --port=8443 {NAME}:1.0"
    assert "insecure" not in " ".join(port.values()) and "tls-verify" not in port["skopeo"]
    assert port["rkt fetch"] == ("rkt fetch https://127.0.0.1:8443/_aci/127.0.0.1/team/app/1.0/"
                                 "linux/amd64/image.aci")
    assert port["docker"] == "docker pull 127.0.0.1:8443/team/app:1.0"
    # Plain HTTP away from loopback: insecure options, and docker's daemon setting named.
    plain = tools("http://registry.test:8080")
    assert plain["skopeo"].startswith("skopeo copy --src-tls-verify=false ")
    assert 'insecure-registries": ["registry.test:8080"]' in plain["docker"]
    # Names under another domain than the registry's host take no port flag.
    assert fetch_command("http://registry.test:8080", NAME, "1.0") == (
        f"pyrkt fetch --insecure-options=http {NAME}:1.0")
    # Another platform is asked for by label; appc-only versions get no OCI commands.
    arm = version_commands("https://127.0.0.1", NAME, "1.0", "linux", "aarch64", None)
    assert [c.tool for c in arm] == ["pyrkt fetch", "pyrkt run", "rkt fetch"]
    assert arm[0].line == f"pyrkt fetch {NAME}:1.0,os=linux,arch=aarch64"


def test_commands_name_the_registry_ca_when_it_serves_a_tls_init_certificate(tmp_path):
    from registry.server.tls.localca import init_local_ca, served_local_ca
    from registry.server.ui.commands import trust_command, version_commands

    local = init_local_ca(tmp_path / "data" / "tls", ("127.0.0.1",))
    ca = served_local_ca(tmp_path / "data", local.cert_file)
    assert ca == local.ca_file.absolute()
    assert served_local_ca(tmp_path / "data", tmp_path / "other.pem") is None
    lines = {c.tool: c for c in version_commands("https://127.0.0.1:8443", NAME, "1.0", "linux",
                                                 "amd64", "team/app", str(ca))}
    assert lines["pyrkt fetch"].line == f"pyrkt fetch --ca-bundle {ca} --port=8443 {NAME}:1.0"
    assert lines["pyrkt run"].line.startswith(lines["pyrkt fetch"].line + " && pyrkt run ")
    assert "insecure" not in " ".join(c.line for c in lines.values())
    assert lines["docker"].note.endswith("/etc/docker/certs.d/127.0.0.1:8443/ca.crt")
    assert lines["skopeo"].note.endswith("/etc/containers/certs.d/127.0.0.1:8443/ca.crt")
    assert trust_command("https://127.0.0.1", NAME, str(ca)) == (
        f"pyrkt trust --prefix {NAME} --ca-bundle {ca}")
    # Plain HTTP has no certificate: no CA flag even if one is lying around.
    assert "--ca-bundle" not in trust_command("http://127.0.0.1:8080", NAME, str(ca))
