"""The trust store: which OpenPGP keys may sign images under which name prefixes (rkt's layout).

Under each configuration layer (`ConfigDirs`: system, local, user):

    trustedkeys/root.d/<fingerprint>                    trusted for every image name
    trustedkeys/prefix.d/<prefix>/<fingerprint>         trusted for names under <prefix>

A key file holds the armored public key; its name is the lower-case fingerprint, as rkt wrote
it. A key trusted for `example.com/team` signs `example.com/team/app` and everything deeper:
`keys_for(name)` collects the keys of the name itself, each of its parent paths, and root.
`pyrkt trust` writes to the local layer as root and to the user layer otherwise; the system
layer is read-only.
"""

from __future__ import annotations

import builtins
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path

from registry.discovery import AC_IDENTIFIER, walk_prefixes
from registry.signing import PublicKey, SigningError, read_public_keys

from .dirs import ConfigDirs
from .errors import TrustError


@dataclass(frozen=True)
class TrustedKey:
    key: PublicKey
    prefix: str | None  # None: a root key, trusted for every name
    path: Path

    @property
    def fingerprint(self) -> str:
        return self.key.fingerprint

    @property
    def scope(self) -> str:
        return self.prefix if self.prefix is not None else "(root)"


def check_prefix(prefix: str) -> str:
    """A prefix must be an AC identifier (an image name or one of its parent paths)."""
    cleaned = prefix.strip().strip("/")
    if not cleaned or not AC_IDENTIFIER.match(cleaned):
        raise TrustError(f'prefix "{prefix}" is not a valid image name prefix (lower-case '
                         f"letters and digits, separated by one of -._~/)")
    return cleaned


class TrustStore:
    def __init__(self, dirs: ConfigDirs) -> None:
        self.dirs = dirs

    @staticmethod
    def _base(layer: str | os.PathLike[str]) -> Path:
        return Path(layer, "trustedkeys")

    def _writable_bases(self) -> list[Path]:
        return [self._base(layer) for layer in self.dirs.layers() if layer != self.dirs.system]

    # reading ---------------------------------------------------------------------------------

    def _read(self, path: Path, prefix: str | None) -> TrustedKey | None:
        try:
            keys = read_public_keys(path.read_bytes())
        except (OSError, SigningError):
            return None  # an unreadable file trusts nothing (list() reports it)
        return TrustedKey(keys[0], prefix, path)

    def _scan(self) -> list[TrustedKey]:
        """Every trusted key file of every layer; a later layer's file overrides the same path."""
        by_slot: dict[tuple[str | None, str], TrustedKey] = {}
        for layer in self.dirs.layers():
            base = self._base(layer)
            root = base / "root.d"
            if root.is_dir():
                for path in sorted(root.iterdir()):
                    if path.is_file() and (found := self._read(path, None)):
                        by_slot[(None, path.name.lower())] = found
            prefixes = base / "prefix.d"
            if prefixes.is_dir():
                for path in sorted(prefixes.rglob("*")):
                    if not path.is_file():
                        continue
                    prefix = path.parent.relative_to(prefixes).as_posix()
                    if (found := self._read(path, prefix)):
                        by_slot[(prefix, path.name.lower())] = found
        return list(by_slot.values())

    def list(self) -> list[TrustedKey]:
        return sorted(self._scan(), key=lambda k: (k.prefix is not None, k.prefix or "",
                                                   k.fingerprint))

    def keys_for(self, name: str) -> builtins.list[TrustedKey]:
        """Keys trusted to sign `name`: its own prefix, every parent path, and root keys."""
        scopes = set(walk_prefixes(name))
        return [k for k in self._scan() if k.prefix is None or k.prefix in scopes]

    def prefixes_trusting(self, fingerprint_or_issuer: str) -> builtins.list[str]:
        """Where a key (by fingerprint, subkey fingerprint or key ID) is trusted, for messages."""
        return sorted({k.scope for k in self._scan() if k.key.has_component(fingerprint_or_issuer)})

    # writing ---------------------------------------------------------------------------------

    def add(self, key: PublicKey, *, prefix: str | None = None, root: bool = False) -> Path:
        """Trust `key` for `prefix` (or for everything with root=True); returns the file written."""
        if root == (prefix is not None):
            raise TrustError("give exactly one of a prefix or root trust")
        base = self._base(self.dirs.writable())
        folder = base / "root.d" if root else base / "prefix.d" / check_prefix(prefix or "")
        target = folder / key.fingerprint.lower()
        try:
            folder.mkdir(parents=True, exist_ok=True)
            fd, temp = tempfile.mkstemp(dir=folder, prefix=".key-")
            with os.fdopen(fd, "w") as handle:
                handle.write(key.armored())
            os.chmod(temp, 0o644)
            os.replace(temp, target)
        except OSError as error:
            raise TrustError(f"cannot write {target}: {error.strerror or error}") from error
        return target

    def remove(self, fingerprint: str) -> builtins.list[Path]:
        """Stop trusting a key everywhere it is trusted (local and user layers)."""
        wanted = fingerprint.replace(" ", "").lower()
        if len(wanted) < 16 or any(c not in "0123456789abcdef" for c in wanted):
            raise TrustError(f'"{fingerprint}" is not a key fingerprint (40 hex digits)')
        removed = []
        for trusted in self._scan():
            if trusted.fingerprint.lower().endswith(wanted) and not any(
                    trusted.path.is_relative_to(b) for b in self._writable_bases()):
                raise TrustError(f"key {trusted.fingerprint} is trusted by the system "
                                 f"configuration ({trusted.path}); remove it there")
        for base in self._writable_bases():
            if not base.is_dir():
                continue
            for path in sorted(base.rglob("*")):
                if path.is_file() and path.name.lower().endswith(wanted):
                    try:
                        path.unlink()
                    except OSError as error:
                        raise TrustError(f"cannot remove {path}: {error.strerror or error}") from error
                    removed.append(path)
        if not removed:
            raise TrustError(f"no trusted key has the fingerprint {fingerprint}")
        return removed
