"""rkt's global flags before the subcommand, and --trust-keys-from-https, against a static HTTPS site."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner
from client_kit import ClientEnv, build_aci, discovery_page, host_labels
from static_site import StaticSite, make_tls_files

from registry.cli.main import pyrkt

HOST = "127.0.0.1"
APP = f"{HOST}/team/app"


@pytest.fixture()
def site(tmp_path: Path, trusted_key, env: ClientEnv):
    tls = make_tls_files(tmp_path / "tls")
    root = tmp_path / "www"
    with StaticSite(root, tls=tls) as served:
        (root / "team").mkdir(parents=True)
        (root / "team" / "index.html").write_text(discovery_page(
            ("ac-discovery", f"{HOST}/team", f"{served.url}/{{name}}-{{version}}.{{ext}}"),
            ("ac-discovery-pubkeys", f"{HOST}/team", f"{served.url}/keys.asc")))
        (root / "keys.asc").write_text(trusted_key.armored_public())
        build_aci(root / f"{APP}-1.0.0.aci", APP, host_labels("1.0.0"), key=trusted_key)
        env.domain_config(HOST, port=served.port, caBundle=str(tls.ca_path))
        yield served


def before(env: ClientEnv, *args: str):  # type: ignore[no-untyped-def]
    """`pyrkt <global flags> ARGS...`: the global flags BEFORE the subcommand, as rkt writes them."""
    return CliRunner().invoke(pyrkt, [*env.flags(), *args], catch_exceptions=False)


def test_trust_keys_from_https_before_the_subcommand(site, env: ClientEnv, trusted_key) -> None:
    refused = before(env, "fetch", f"{APP}:1.0.0")
    assert refused.exit_code == 254
    assert "pyrkt trust" in refused.output or "no key" in refused.output.lower()

    fetched = before(env, "--trust-keys-from-https", "fetch", f"{APP}:1.0.0")
    assert fetched.exit_code == 0, fetched.output
    assert f"trusting key {trusted_key.fingerprint}" in fetched.output
    assert "(--trust-keys-from-https)" in fetched.output
    saved = env.config_layer / "trustedkeys" / "prefix.d" / HOST / "team" / "app" / \
        trusted_key.fingerprint.lower()
    assert saved.is_file()
    assert [image.name for image in env.store().list()] == [APP]
    # Trusted now: a second fetch neither asks nor trusts again.
    again = before(env, "--trust-keys-from-https", "fetch", f"{APP}:1.0.0")
    assert again.exit_code == 0 and "trusting key" not in again.output


def test_trust_keys_from_https_does_nothing_without_tls_checks(site, env: ClientEnv) -> None:
    result = before(env, "--trust-keys-from-https", "--insecure-options=tls", "fetch",
                    f"{APP}:1.0.0")
    assert result.exit_code == 254
    assert "--trust-keys-from-https does nothing with --insecure-options=tls" in result.output
    assert not (env.config_layer / "trustedkeys").exists() or not list(
        (env.config_layer / "trustedkeys").rglob("*"))


def test_debug_and_bad_global_values(env: ClientEnv) -> None:
    listed = before(env, "--debug", "image", "list")
    assert listed.exit_code == 0 and "NAME" in listed.output
    bad = before(env, "--insecure-options=bogus", "image", "list")
    assert bad.exit_code == 2 and 'unknown insecure option "bogus"' in bad.output
