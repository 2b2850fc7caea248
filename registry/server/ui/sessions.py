"""Who is signed in to the UI (the session holds the user's id and a password-bound proof)
and the view guards."""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Callable
from functools import wraps
from typing import Any, TypeVar

from flask import current_app, g, jsonify, redirect, request, session, url_for

from registry.server.auth import SESSION_USER_KEY
from registry.server.context import db
from registry.server.models import User
from registry.server.services.actor import Actor
from registry.server.services.errors import Forbidden

from .blueprint import back_url, wants_json

F = TypeVar("F", bound=Callable[..., Any])
PROOF_KEY = "auth_proof"


def session_proof(user: User) -> str:
    """Binds a session to the user's current password: changing it signs out every other
    browser (the session cookie is signed, not stored, so it cannot be revoked otherwise)."""
    return hmac.new(current_app.secret_key.encode(),  # type: ignore[union-attr]
                    f"{user.id}:{user.password_hash}".encode(), hashlib.sha256).hexdigest()


def start_session(user: User) -> None:
    session[SESSION_USER_KEY] = user.id
    session[PROOF_KEY] = session_proof(user)
    g.ui_user = user


def current_user() -> User | None:
    """The signed-in user; a session naming a deleted user, or made before the user's
    password changed, counts as signed out."""
    if "ui_user" not in g:
        user_id = session.get(SESSION_USER_KEY)
        user = db().get(User, user_id) if isinstance(user_id, int) else None
        proof = session.get(PROOF_KEY)
        if user is not None and not (isinstance(proof, str) and
                                     hmac.compare_digest(proof, session_proof(user))):
            user = None
        if user is None and user_id is not None:
            session.pop(SESSION_USER_KEY, None)
            session.pop(PROOF_KEY, None)
        g.ui_user = user
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
