"""Who is signed in to the UI (the session holds the user's id and a password-bound proof)
and the view guards."""

from __future__ import annotations

from collections.abc import Callable
from functools import wraps
from typing import Any, TypeVar

from flask import g, jsonify, redirect, request, url_for

from registry.server.auth import bind_session, session_user
from registry.server.models import User
from registry.server.services.actor import Actor
from registry.server.services.errors import Forbidden

from .blueprint import back_url, wants_json

F = TypeVar("F", bound=Callable[..., Any])


def start_session(user: User) -> None:
    bind_session(user)
    g.ui_user = user


def current_user() -> User | None:
    """The signed-in user (registry.server.auth.session_user's rule: a session of a deleted
    user, or from before the password changed, counts as signed out)."""
    if "ui_user" not in g:
        g.ui_user = session_user()
    return g.ui_user


def ui_actor() -> Actor:
    """The actor of a UI action: only the session counts (never an Authorization header)."""
    return Actor(user=current_user(), remote_addr=request.remote_addr)


def login_required(view: F) -> F:
    @wraps(view)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        if current_user() is None:
            if wants_json():
                return jsonify({"ok": False, "code": "signed-out",
                                "message": "you are signed out: sign in again, then retry"}), 401
            # After signing in, come back to the page (a form's own URL only answers POST).
            target = request.full_path.rstrip("?") if request.method == "GET" else back_url()
            return redirect(url_for("ui.login", next=target), code=303)
        return view(*args, **kwargs)

    return wrapper  # type: ignore[return-value]


def admin_required(view: F) -> F:
    @login_required
    @wraps(view)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        user = current_user()
        if user is None or not user.is_admin:
            raise Forbidden("this page is for registry administrators")
        return view(*args, **kwargs)

    return wrapper  # type: ignore[return-value]
