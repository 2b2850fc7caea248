"""The registry's one table of settings: every PYRKT_REGISTRY_* variable the project mentions
is in it, a misspelt variable or config-file key is refused with the right name suggested, and
`pyrkt-registry config` shows the effective values, masked secrets and their sources."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from registry.server.config import BY_ENV, FOREIGN_VARIABLES, ConfigError, RegistryConfig

REPO = Path(__file__).resolve().parents[2]


def _clean_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYRKT_REGISTRY_")}
    env.update(extra)
    return env


def _registry(*args: str, cwd: Path, **env: str) -> subprocess.CompletedProcess[str]:
    script = Path(sys.executable).with_name("pyrkt-registry")
    return subprocess.run([str(script), *args], cwd=cwd, env=_clean_env(**env),
                          capture_output=True, text=True, timeout=60)


def test_misspelt_variable_is_refused_naming_the_right_one(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as caught:
        RegistryConfig.load({"PYRKT_REGISTRY_STORGE": "s3"}, data_dir=str(tmp_path))
    assert str(caught.value) == ("unknown setting PYRKT_REGISTRY_STORGE "
                                 "(did you mean PYRKT_REGISTRY_STORAGE?)")
    with pytest.raises(ConfigError, match=r"PYRKT_REGISTRY_WORKRS \(did you mean "
                                          r"PYRKT_REGISTRY_WORKERS\?\)"):
        RegistryConfig.load({"PYRKT_REGISTRY_WORKRS": "2"}, data_dir=str(tmp_path))
    # Nothing close: the message says where the list is instead of guessing.
    with pytest.raises(ConfigError, match=r"PYRKT_REGISTRY_ZZZ .*pyrkt-registry config"):
        RegistryConfig.load({"PYRKT_REGISTRY_ZZZ": "1"}, data_dir=str(tmp_path))


def test_misspelt_config_file_key_is_refused_naming_the_right_one(tmp_path: Path) -> None:
    named = tmp_path / "named.toml"
    named.write_text('storge = "s3"\n')
    with pytest.raises(ConfigError) as caught:
        RegistryConfig.load({"PYRKT_REGISTRY_CONFIG": str(named)}, data_dir=str(tmp_path))
    assert str(caught.value) == (f"config file {named}: unknown setting storge "
                                 "(did you mean storage?)")
    # The data dir's own registry.toml is checked the same way.
    (tmp_path / "registry.toml").write_text("max_uplaod = 10\n")
    with pytest.raises(ConfigError, match=r"unknown setting max_uplaod \(did you mean "
                                          r"max_upload\?\)"):
        RegistryConfig.load({}, data_dir=str(tmp_path))


def test_cli_refuses_a_misspelt_setting_in_one_line(tmp_path: Path) -> None:
    result = _registry("config", cwd=tmp_path, PYRKT_REGISTRY_STORGE="s3")
    assert result.returncode == 1 and result.stdout == ""
    assert result.stderr == ("Error: unknown setting PYRKT_REGISTRY_STORGE "
                             "(did you mean PYRKT_REGISTRY_STORAGE?)\n")
    (tmp_path / "r.toml").write_text('s3_bukcet = "b"\n')
    result = _registry("--config", "r.toml", "serve", cwd=tmp_path)
    assert result.returncode == 1 and "Traceback" not in result.stderr
    assert result.stderr.strip().endswith("unknown setting s3_bukcet (did you mean s3_bucket?)")
    assert not (tmp_path / "pyrkt-data").exists()  # refused before anything was created


def test_config_command_shows_values_sources_and_masks_secrets(tmp_path: Path) -> None:
    (tmp_path / "r.toml").write_text('storage = "s3"\ns3_bucket = "pyrkt"\n'
                                     's3_secret_key = "minio-secret"\nthreads = 8\n'
                                     'data_dir = "from-file"\n')
    result = _registry("--config", "r.toml", "--base-url", "https://reg.example", "config",
                       "--format", "json", cwd=tmp_path, PYRKT_REGISTRY_WORKERS="3",
                       PYRKT_REGISTRY_DATABASE_URL="postgresql+psycopg://u:dbsecret@db/pyrkt",
                       PYRKT_REGISTRY_SECRET_KEY="session-secret",
                       PYRKT_REGISTRY_URL="http://127.0.0.1:1")  # pyrkt push's, left alone
    assert result.returncode == 0, result.stderr
    assert "minio-secret" not in result.stdout and "dbsecret" not in result.stdout
    assert "session-secret" not in result.stdout
    rows = {row["name"]: row for row in json.loads(result.stdout)}
    assert set(rows) == {s.name for s in BY_ENV.values()}
    config_file = str(tmp_path / "r.toml")

    def seen(name: str) -> tuple[object, str]:
        return rows[name]["value"], rows[name]["source"]

    assert seen("config") == (config_file, "command line")
    assert seen("base_url") == ("https://reg.example", "command line")
    assert seen("domains") == (["reg.example"], "default")
    assert seen("workers") == (3, "environment")
    assert seen("threads") == (8, "config file " + config_file)
    assert seen("storage") == ("s3", "config file " + config_file)
    assert seen("data_dir") == (str(tmp_path / "from-file"), "config file " + config_file)
    assert seen("storage_dir") == (str(tmp_path / "from-file" / "storage"), "default")
    assert seen("s3_secret_key") == ("********", "config file " + config_file)
    assert seen("secret_key") == ("********", "environment")
    assert seen("database_url") == ("postgresql+psycopg://u:***@db/pyrkt", "environment")
    assert seen("timeout") == (120, "default")
    assert rows["s3_secret_key"]["secret"] is True and rows["bind"]["secret"] is False
    text = _registry("--config", "r.toml", "config", "--explain", cwd=tmp_path).stdout
    assert re.search(r"^PYRKT_REGISTRY_THREADS +8 +\[config file .*r\.toml\]$", text, re.M)
    assert re.search(r"^ +threads per worker \(integer; default: 4\)$", text, re.M)


def test_bad_values_name_where_they_came_from(tmp_path: Path) -> None:
    (tmp_path / "r.toml").write_text('timeout = "soon"\n')
    with pytest.raises(ConfigError, match=rf"^{re.escape(str(tmp_path / 'r.toml'))}: timeout: "
                                          r"'soon' is not a whole number$"):
        RegistryConfig.load({"PYRKT_REGISTRY_CONFIG": str(tmp_path / "r.toml")})
    with pytest.raises(ConfigError, match=r"^PYRKT_REGISTRY_LOG_LEVEL: 'loud' is not one of"):
        RegistryConfig.load({"PYRKT_REGISTRY_LOG_LEVEL": "loud"}, data_dir=str(tmp_path))
    with pytest.raises(ConfigError, match=r"^--bind: 'nowhere' is not HOST:PORT$"):
        RegistryConfig.load({}, data_dir=str(tmp_path), bind="nowhere")
    with pytest.raises(ConfigError, match=r"PYRKT_REGISTRY_WORKERS \(workers\) must be at least 1"):
        RegistryConfig.load({"PYRKT_REGISTRY_WORKERS": "0"}, data_dir=str(tmp_path))


def test_gunicorn_reads_its_settings_from_the_table(tmp_path: Path) -> None:
    probe = ("import registry.server.gunicorn_conf as g; "
             "print(g.bind, g.workers, g.threads, g.timeout, g.accesslog, g.loglevel)")
    run = [sys.executable, "-c", probe]
    result = subprocess.run(run, cwd=tmp_path, capture_output=True, text=True, timeout=60,
                            env=_clean_env(PYRKT_REGISTRY_BIND="127.0.0.1:9999",
                                           PYRKT_REGISTRY_WORKERS="3", PYRKT_REGISTRY_THREADS="2",
                                           PYRKT_REGISTRY_TIMEOUT="7",
                                           PYRKT_REGISTRY_ACCESS_LOG="-",
                                           PYRKT_REGISTRY_LOG_LEVEL="warning"))
    assert result.stdout.split() == ["['127.0.0.1:9999']", "3", "2", "7", "-", "warning"], \
        result.stderr
    result = subprocess.run(run, cwd=tmp_path, capture_output=True, text=True, timeout=60,
                            env=_clean_env(PYRKT_REGISTRY_THREDS="2"))
    assert result.returncode != 0
    assert "unknown setting PYRKT_REGISTRY_THREDS (did you mean PYRKT_REGISTRY_THREADS?)" \
        in result.stderr


def test_every_variable_the_project_mentions_is_in_the_table() -> None:
    mentioned: set[str] = set()
    for pattern in ("registry/**/*.py", "*.md", "Dockerfile", "docker-compose.yml", "*.ini",
                    "gunicorn.conf.py", ".ci/*", "bench/*.py"):
        for path in REPO.glob(pattern):
            mentioned |= set(re.findall(r"PYRKT_REGISTRY_[A-Z0-9_]*[A-Z0-9]", path.read_text()))
    assert len(mentioned) > 20
    mentioned.discard("PYRKT_REGISTRY_STORGE")  # the docs' example of a typo
    assert sorted(mentioned - set(BY_ENV) - FOREIGN_VARIABLES) == []
    # Nothing outside the settings module reads a registry variable by itself.
    for path in (REPO / "registry").rglob("*.py"):
        if path.name != "config.py":
            assert not re.search(r"environ(\.get)?\(?\[?[\"']PYRKT_REGISTRY_", path.read_text()), \
                path
