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
from pathlib import Path

from registry.records import record

SYSTEM_CONFIG = Path("/usr/lib/pyrkt")
LOCAL_CONFIG = Path("/etc/pyrkt")
ROOT_STORE = Path("/var/lib/pyrkt")


def is_root() -> bool:
    return os.geteuid() == 0


def _home_subdir(env: str, default: str) -> Path:
    base = os.environ.get(env)
    return Path(base) if base else Path.home() / default


def default_store_dir() -> Path:
    if os.environ.get("PYRKT_DIR"):
        return Path(os.environ["PYRKT_DIR"])
    if is_root():
        return ROOT_STORE
    return _home_subdir("XDG_DATA_HOME", ".local/share") / "pyrkt"


def default_user_config() -> Path:
    if os.environ.get("PYRKT_USER_CONFIG"):
        return Path(os.environ["PYRKT_USER_CONFIG"])
    return _home_subdir("XDG_CONFIG_HOME", ".config") / "pyrkt"


@record(frozen=True)
class ConfigDirs:
    """The three configuration layers, lowest precedence first."""

    system: Path = SYSTEM_CONFIG
    local: Path = LOCAL_CONFIG
    user: Path | None = None

    @classmethod
    def from_env(cls, system: str | os.PathLike[str] | None = None,
                 local: str | os.PathLike[str] | None = None,
                 user: str | os.PathLike[str] | None = None) -> ConfigDirs:
        """Flags first, then environment variables, then the defaults."""
        return cls(
            system=Path(system or os.environ.get("PYRKT_SYSTEM_CONFIG") or SYSTEM_CONFIG),
            local=Path(local or os.environ.get("PYRKT_LOCAL_CONFIG") or LOCAL_CONFIG),
            user=Path(user) if user else default_user_config(),
        )

    def layers(self) -> list[Path]:
        """Directories to read, lowest precedence first."""
        found = [self.system, self.local]
        if self.user is not None and self.user not in found:
            found.append(self.user)
        return found

    def writable(self) -> Path:
        """Where `pyrkt trust` writes: the local directory for root, the user's otherwise (as rkt)."""
        if is_root() or self.user is None:
            return self.local
        return self.user
