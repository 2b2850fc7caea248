"""Who is acting: a signed-in user, an anonymous client, or the operator at the command line."""

from __future__ import annotations

from dataclasses import dataclass

from registry.server.models import User


@dataclass(frozen=True)
class Actor:
    user: User | None = None
    remote_addr: str | None = None
    # The operator running `pyrkt-registry` on the host holds every right.
    system: bool = False

    @classmethod
    def operator(cls) -> Actor:
        return cls(system=True)

    @property
    def name(self) -> str | None:
        if self.user is not None:
            return self.user.username
        return "(operator)" if self.system else None

    @property
    def is_site_admin(self) -> bool:
        return self.system or (self.user is not None and self.user.is_admin)

    @property
    def is_anonymous(self) -> bool:
        return self.user is None and not self.system
