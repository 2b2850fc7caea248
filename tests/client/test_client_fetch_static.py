"""`pyrkt trust` and `pyrkt fetch` against a static HTTPS site (http.server, hand-written HTML).

No pyrkt server code is involved: the client is checked against the appc discovery spec.
Layout of the site (images are named 127.0.0.1/team/...):

    /index.html                  ac-discovery-pubkeys for "127.0.0.1" (keys from a parent page)
    /team/index.html             two ac-discovery templates: one needing {channel}, one not
    /keys.asc                    the trusted key
    /images/...                  the ACIs and signatures the templates point at
    /moved (302) -> /pages/moved.html   a redirected discovery page for 127.0.0.1/moved/...
"""

from __future__ import annotations

from pathlib import Path

import pytest
from client_kit import ClientEnv, build_aci, discovery_page, host_labels, sign
from static_site import StaticSite, make_tls_files

HOST = "127.0.0.1"
APP = f"{HOST}/team/app"


class Site:
    def __init__(self, root: Path, site: StaticSite, key, ids: dict[str, str]) -> None:
        self.root, self.site, self.key, self.ids = root, site, key, ids

    def aci(self, version: str = "1.0.0") -> Path:
        labels = host_labels(version)
        return self.root / "images" / f"{APP}-{version}-{labels['os']}-{labels['arch']}.aci"


@pytest.fixture()
def tls(tmp_path: Path):
    return make_tls_files(tmp_path / "tls")


@pytest.fixture()
def site(tmp_path: Path, tls, trusted_key, env: ClientEnv):
    root = tmp_path / "www"
    with StaticSite(root, tls=tls, redirects={"/moved/app": "/pages/moved.html"}) as served:
        base = served.url
        (root / "team").mkdir(parents=True)
        (root / "index.html").write_text(discovery_page(
            ("ac-discovery-pubkeys", HOST, f"{base}/keys.asc")))
        (root / "team" / "index.html").write_text(discovery_page(
            ("ac-discovery", f"{HOST}/team", f"{base}/beta/{{name}}-{{version}}-{{channel}}.{{ext}}"),
            ("ac-discovery", f"{HOST}/team", f"{base}/images/{{name}}-{{version}}-{{os}}-{{arch}}.{{ext}}")))
        (root / "pages").mkdir()
        (root / "pages" / "moved.html").write_text(discovery_page(
            ("ac-discovery", f"{HOST}/moved", f"{base}/images/{{name}}.{{ext}}")))
        (root / "keys.asc").write_text(trusted_key.armored_public())
        labels = host_labels("1.0.0")
        ids = {
            "stable": build_aci(root / "images" / f"{APP}-1.0.0-{labels['os']}-{labels['arch']}.aci",
                                APP, labels, key=trusted_key),
            "beta": build_aci(root / "beta" / f"{APP}-1.0.0-beta.aci", APP,
                              {**labels, "channel": "beta"}, {"beta.txt": "beta"}, key=trusted_key),
            "moved": build_aci(root / "images" / f"{HOST}/moved/app.aci", f"{HOST}/moved/app",
                               labels, key=trusted_key),
        }
        env.domain_config(HOST, port=served.port, caBundle=str(tls.ca_path))
        yield Site(root, served, trusted_key, ids)


def test_trust_discovers_keys_from_a_parent_page_and_asks(site: Site, env: ClientEnv) -> None:
    refused = env.run(["trust"], "--prefix", APP, input="no\n")
    assert refused.exit_code != 0
    assert site.key.fingerprint[:4] in refused.output.replace(" ", "")
    assert not list(env.config_layer.rglob(site.key.fingerprint.lower()))

    result = env.run(["trust"], "--prefix", APP, input="yes\n")
    assert result.exit_code == 0, result.output
    assert "pyrkt test" not in result.output or "trusted@127.0.0.1" in result.output
    saved = env.config_layer / "trustedkeys" / "prefix.d" / HOST / "team" / "app" / \
        site.key.fingerprint.lower()
    assert saved.is_file()
    # the keys came from the root page: the walk went up past /team/app and /team
    assert any(path.startswith("/keys.asc") for path in site.site.paths_requested())
    listed = env.run(["trust", "list"])
    assert APP in listed.output and site.key.fingerprint in listed.output


def test_walk_up_and_the_template_without_unfilled_variables(site: Site, env: ClientEnv) -> None:
    env.trust_key(site.key, f"{HOST}/team")
    result = env.run(["fetch"], "--full", f"{APP}:1.0.0")
    assert result.exit_code == 0, result.output
    assert result.output.strip().splitlines()[-1] == site.ids["stable"]
    asked = site.site.paths_requested()
    assert "/team/app?ac-discovery=1" in asked  # 404: walked up
    # the signature was asked before the image
    images = [p for p in asked if p.startswith("/images/")]
    assert images[0].endswith(".aci.asc") and images[1].endswith(".aci")
    stored = env.store().get(site.ids["stable"])
    assert stored.name == APP and stored.labels["version"] == "1.0.0"


def test_custom_label_selects_the_first_template(site: Site, env: ClientEnv) -> None:
    env.trust_key(site.key, HOST)
    result = env.run(["fetch"], "--full", f"{APP}:1.0.0,channel=beta")
    assert result.exit_code == 0, result.output
    assert result.output.strip().splitlines()[-1] == site.ids["beta"]
    assert env.store().get(site.ids["beta"]).labels["channel"] == "beta"


def test_latest_and_a_redirected_discovery_page(site: Site, env: ClientEnv) -> None:
    env.trust_key(site.key, None)  # a root key, asked for explicitly
    result = env.run(["fetch"], f"{HOST}/moved/app")
    assert result.exit_code == 0, result.output
    assert result.output.strip().splitlines()[-1] == site.ids["moved"][:39]
    assert "/pages/moved.html?ac-discovery=1" in site.site.paths_requested()


def test_short_id_and_image_id_reference(site: Site, env: ClientEnv) -> None:
    env.trust_key(site.key, APP)
    first = env.run(["fetch"], f"{APP}:1.0.0")
    assert first.output.strip().splitlines()[-1] == site.ids["stable"][:39]
    again = env.run(["fetch"], "--full", site.ids["stable"][:20])
    assert again.exit_code == 0 and again.output.strip() == site.ids["stable"]


# refusals: a clear message, a non-zero exit, the store unchanged ------------------------------


def _refused(env: ClientEnv, ref: str, *expected: str, flags: tuple[str, ...] = ()) -> str:
    env.store()
    before = env.snapshot()
    result = env.run(["fetch"], *flags, ref)
    assert result.exit_code != 0, result.output
    for text in expected:
        assert text in result.output, result.output
    assert env.snapshot() == before
    assert not [p for p in (env.store_dir / "tmp").iterdir()], "leftovers in tmp/"
    locks = env.store_dir / "locks"
    assert not (list(locks.glob("partial-*.lock")) if locks.is_dir() else []), \
        "a refused fetch left its download lock in locks/"
    return result.output


def test_refuses_an_unsigned_image(site: Site, env: ClientEnv) -> None:
    env.trust_key(site.key, APP)
    site.aci().with_name(site.aci().name + ".asc").unlink()
    _refused(env, f"{APP}:1.0.0", "refusing an unsigned image", "--insecure-options=image")
    ok = env.run(["fetch"], "--insecure-options", "image", f"{APP}:1.0.0")
    assert ok.exit_code == 0 and "signature verification has been disabled" in ok.output


def test_refuses_a_signature_by_an_untrusted_key(site: Site, env: ClientEnv, stranger_key) -> None:
    env.trust_key(site.key, APP)
    sign(stranger_key, site.aci())
    output = _refused(env, f"{APP}:1.0.0", "not trusted", f"pyrkt trust --prefix {APP}")
    # refused before the image itself was downloaded
    assert not any(p.endswith(".aci") for p in site.site.paths_requested())
    assert "Somebody" not in output


def test_refuses_a_key_trusted_for_another_prefix(site: Site, env: ClientEnv) -> None:
    env.trust_key(site.key, f"{HOST}/elsewhere")
    _refused(env, f"{APP}:1.0.0", "trusted only for: 127.0.0.1/elsewhere",
             f"pyrkt trust --prefix {APP}")


def test_refuses_tampered_bytes(site: Site, env: ClientEnv) -> None:
    env.trust_key(site.key, APP)
    signature = site.aci().with_name(site.aci().name + ".asc").read_bytes()
    build_aci(site.aci(), APP, host_labels("1.0.0"), {"hello.txt": "evil"})
    site.aci().with_name(site.aci().name + ".asc").write_bytes(signature)
    _refused(env, f"{APP}:1.0.0", "signature does not verify")


def test_refuses_a_name_mismatch(site: Site, env: ClientEnv) -> None:
    env.trust_key(site.key, HOST)
    build_aci(site.aci(), f"{HOST}/team/impostor", host_labels("1.0.0"), key=site.key)
    _refused(env, f"{APP}:1.0.0", "not the image asked for", 'name is "127.0.0.1/team/impostor"')


def test_refuses_a_label_mismatch(site: Site, env: ClientEnv) -> None:
    env.trust_key(site.key, APP)
    build_aci(site.aci(), APP, host_labels("6.6.6"), key=site.key)
    _refused(env, f"{APP}:1.0.0", "label version is \"6.6.6\", not \"1.0.0\"")


def test_refuses_a_bad_certificate(site: Site, env: ClientEnv, tmp_path: Path) -> None:
    env.trust_key(site.key, APP)
    other_ca = make_tls_files(tmp_path / "other-ca")
    env.domain_config(HOST, port=site.site.port, caBundle=str(other_ca.ca_path))
    _refused(env, f"{APP}:1.0.0", "TLS error", "CERTIFICATE_VERIFY_FAILED")
    ok = env.run(["fetch"], "--insecure-options", "tls", f"{APP}:1.0.0")
    assert ok.exit_code == 0, ok.output
    assert "TLS certificate verification has been disabled" in ok.output


def test_refuses_plain_http_unless_allowed(tmp_path: Path, env: ClientEnv, trusted_key) -> None:
    root = tmp_path / "plain"
    root.mkdir()
    build_aci(root / "app.aci", f"{HOST}/plain", host_labels(), key=trusted_key)
    env.trust_key(trusted_key, f"{HOST}/plain")
    with StaticSite(root) as plain:
        (root / "index.html").write_text(discovery_page(
            ("ac-discovery", f"{HOST}/plain", f"{plain.url}/app.{{ext}}")))
        env.domain_config(HOST, port=plain.port)
        _refused(env, f"{plain.url}/app.aci", "refusing to fetch the image over plain HTTP",
                 "--insecure-options=http")
        _refused(env, f"{HOST}/plain", "discovery failed")
        ok = env.run(["fetch"], "--insecure-options", "http", f"{HOST}/plain")
        assert ok.exit_code == 0, ok.output
        assert "plain HTTP is allowed" in ok.output


def test_refuses_a_hostile_archive(tmp_path: Path, site: Site, env: ClientEnv) -> None:
    import io
    import tarfile

    env.trust_key(site.key, APP)
    # a correctly signed archive whose entry climbs out of the rootfs
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as tar:
        for name, data in (("manifest", b'{"acKind":"ImageManifest","acVersion":"0.8.11",'
                                        b'"name":"127.0.0.1/team/app"}'),
                           ("rootfs/../../evil", b"x")):
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    site.aci().write_bytes(buffer.getvalue())
    sign(site.key, site.aci())
    _refused(env, f"{APP}:1.0.0", "not a valid ACI")
    assert not (tmp_path / "evil").exists()


# messages that name the real problem --------------------------------------------------------


def test_a_missing_version_is_no_such_image_not_an_unsigned_one(site: Site, env: ClientEnv) -> None:
    env.trust_key(site.key, APP)
    output = _refused(env, f"{APP}:9.9.9", f"no such image: {APP}:9.9.9 (",
                      "— HTTP 404", "credentials (auth.d)")
    assert "unsigned" not in output and "--insecure-options=image" not in output
    # the image itself was asked for only to tell "missing" from "unsigned"
    assert any(p.endswith(".aci") for p in site.site.paths_requested())


def test_a_missing_name_is_no_such_image(site: Site, env: ClientEnv) -> None:
    env.trust_key(site.key, HOST)
    output = _refused(env, f"{HOST}/team/nosuch:1.0.0", f"no such image: {HOST}/team/nosuch:1.0.0")
    assert "unsigned" not in output


def test_an_unknown_os_lists_the_valid_ones_without_asking_the_server(site: Site,
                                                                      env: ClientEnv) -> None:
    env.trust_key(site.key, APP)
    before = len(site.site.paths_requested())
    output = _refused(env, f"{APP}:1.0.0,os=lnux", 'bad os "lnux"', "darwin, freebsd, linux")
    assert "unsigned" not in output
    assert len(site.site.paths_requested()) == before


def test_the_trust_hint_carries_the_flags_this_fetch_needed(tmp_path: Path, env: ClientEnv,
                                                            trusted_key) -> None:
    root = tmp_path / "plain"
    root.mkdir()
    build_aci(root / "app.aci", f"{HOST}/plain", host_labels(), key=trusted_key)
    with StaticSite(root) as plain:
        (root / "index.html").write_text(discovery_page(
            ("ac-discovery", f"{HOST}/plain", f"{plain.url}/app.{{ext}}")))
        output = _refused(env, f"{HOST}/plain", "not trusted",
                          flags=("--insecure-options=http", "--port", str(plain.port)))
    assert (f"pyrkt trust --prefix {HOST}/plain --insecure-allow-http --port={plain.port}"
            in output), output


def test_trust_with_no_answer_on_stdin_says_so(site: Site, env: ClientEnv) -> None:
    result = env.run(["trust"], "--prefix", APP)  # stdin: empty, as with </dev/null
    assert result.exit_code == 254, result.output
    assert "not trusted: no answer on standard input" in result.output
    assert "--skip-fingerprint-review after checking the fingerprint another way" in result.output
    assert not list(env.config_layer.rglob(site.key.fingerprint.lower()))
