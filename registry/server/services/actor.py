"""Who is acting: a signed-in user (or robot), an anonymous client, the operator at the
command line, or the registry itself doing something a request set off."""

from __future__ import annotations

from dataclasses import dataclass

from registry.server.models import ApiToken, Role, User

# What each token scope allows at most (services.tokens explains the scopes).
SCOPE_ROLES = {"read": Role.READ, "push": Role.WRITE, "admin": Role.ADMIN}


@dataclass(frozen=True)
class Actor:
    user: User | None = None
    remote_addr: str | None = None
    # The operator running `pyrkt-registry` on the host holds every right.
    system: bool = False
    # The API token the request came with (None: a password, the UI's session, or none):
    # its scope caps what the user may do (`cap`).
    token: ApiToken | None = None
    # Set for the registry's own actions (`automatic`): what triggered them, for the audit log.
    cause: str | None = None

    @classmethod
    def operator(cls) -> Actor:
        return cls(system=True)

    @classmethod
    def automatic(cls, cause: str, remote_addr: str | None = None) -> Actor:
        """The registry acting on its own (e.g. converting an OCI tag on its first fetch)."""
        return cls(system=True, cause=cause, remote_addr=remote_addr)

    @property
    def name(self) -> str | None:
        if self.user is not None:
            return self.user.username
        if self.system:
            return "(system)" if self.cause else "(operator)"
        return None

    @property
    def kind(self) -> str:
        if self.user is not None:
            return "robot" if self.user.is_robot else "user"
        if self.system:
            return "system" if self.cause else "operator"
        return "anonymous"

    @property
    def full_power(self) -> bool:
        """Not limited by a token: a session, a password, or an admin token for every repository."""
        return self.token is None or (self.token.scope == "admin"
                                      and self.token.repository_id is None)

    @property
    def is_site_admin(self) -> bool:
        return self.system or (self.user is not None and self.user.is_admin and self.full_power)

    @property
    def is_anonymous(self) -> bool:
        return self.user is None and not self.system

    def cap(self, role: Role | None, repository_id: int) -> Role | None:
        """`role` limited by the token's scope: nothing outside its repository, never more
        than its scope allows."""
        if role is None or self.token is None:
            return role
        if self.token.repository_id is not None and self.token.repository_id != repository_id:
            return None
        allowed = SCOPE_ROLES.get(self.token.scope, Role.READ)
        return role if role.rank <= allowed.rank else allowed
