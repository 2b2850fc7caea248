"""Where the client keeps things, rkt-style.

- The image store (`--dir`): `$PYRKT_DIR`, else `/var/lib/pyrkt` for root and the user's data
  directory (`$XDG_DATA_HOME/pyrkt`, default `~/.local/share/pyrkt`) for everyone else.
- Configuration is layered like rkt's: the *system* directory `/usr/lib/pyrkt` (shipped by
  packages, never written), the *local* directory `/etc/pyrkt` (the administrator's), and the
  *user* directory (`$XDG_CONFIG_HOME/pyrkt`, default `~/.config/pyrkt`). Later layers win.
  Each may be overridden by a flag or by `PYRKT_SYSTEM_CONFIG`, `PYRKT_LOCAL_CONFIG`,
  `PYRKT_USER_CONFIG`.
"""

from __future__ import annotations

import os

from registry.records import record

# Paths are plain strings (os.path): pathlib, with the re, fnmatch, urllib.parse and ipaddress
# it loads, costs ~6 ms of every `pyrkt` start. Every path taken may be a str or an os.PathLike.
SYSTEM_CONFIG = "/usr/lib/pyrkt"
LOCAL_CONFIG = "/etc/pyrkt"
ROOT_STORE = "/var/lib/pyrkt"


def plain_path(path: str | os.PathLike[str]) -> str:
    """`str(Path(path))` without pathlib: repeated slashes and `.` components dropped, no
    trailing slash (`..` is kept, as pathlib keeps it), so messages name a path as before."""
    text = os.fspath(path)
    root = "/" if text.startswith("/") else ""
    parts = [part for part in text.split("/") if part and part != "."]
    return root + "/".join(parts) or "."


def is_root() -> bool:
    return os.geteuid() == 0


def _home_subdir(env: str, default: str) -> str:
    base = os.environ.get(env)
    return plain_path(base) if base else plain_path(os.path.join(os.path.expanduser("~"), default))


def default_store_dir() -> str:
    """The image store's directory when no `--dir` is given."""
    if os.environ.get("PYRKT_DIR"):
        return plain_path(os.environ["PYRKT_DIR"])
    if is_root():
        return ROOT_STORE
    return os.path.join(_home_subdir("XDG_DATA_HOME", ".local/share"), "pyrkt")


def default_user_config() -> str:
    if os.environ.get("PYRKT_USER_CONFIG"):
        return plain_path(os.environ["PYRKT_USER_CONFIG"])
    return os.path.join(_home_subdir("XDG_CONFIG_HOME", ".config"), "pyrkt")


@record(frozen=True)
class ConfigDirs:
    """The three configuration layers, lowest precedence first."""

    system: str = SYSTEM_CONFIG
    local: str = LOCAL_CONFIG
    user: str | None = None

    @classmethod
    def from_env(cls, system: str | os.PathLike[str] | None = None,
                 local: str | os.PathLike[str] | None = None,
                 user: str | os.PathLike[str] | None = None) -> ConfigDirs:
        """Flags first, then environment variables, then the defaults."""
        return cls(
            system=plain_path(system or os.environ.get("PYRKT_SYSTEM_CONFIG") or SYSTEM_CONFIG),
            local=plain_path(local or os.environ.get("PYRKT_LOCAL_CONFIG") or LOCAL_CONFIG),
            user=plain_path(user) if user else default_user_config(),
        )

    def layers(self) -> list[str]:
        """Directories to read, lowest precedence first."""
        found = [self.system, self.local]
        if self.user is not None and self.user not in found:
            found.append(self.user)
        return found

    def writable(self) -> str:
        """Where `pyrkt trust` writes: the local directory for root, the user's otherwise (as rkt)."""
        if is_root() or self.user is None:
            return self.local
        return self.user
