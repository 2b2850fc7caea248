"""Signing in and out, users (administrators), API tokens and passwords."""

from __future__ import annotations

from flask import flash, make_response, render_template, request, session, url_for
from werkzeug.wrappers import Response

from registry.server.auth import throttle_policy
from registry.server.context import db
from registry.server.models import ApiToken, Role
from registry.server.services import repositories, robots, tokens, users
from registry.server.services.throttle import Throttled

from .blueprint import back_url, bp, see_other
from .csrf import rotate_csrf_token
from .sessions import admin_required, current_user, login_required, start_session, ui_actor
from .urls import home_url


def _local_next(default: str | None = None) -> str:
    """The page to return to after login; only paths on this site (no open redirect)."""
    target = request.values.get("next", "")
    if target.startswith("/") and not target.startswith("//") and "\\" not in target:
        return target
    return home_url() if default is None else default


@bp.route("/login", methods=["GET", "POST"])
def login() -> Response | tuple[str, int] | str:
    if request.method == "GET":
        return render_template("ui/login.html", next=_local_next(""), username="")
    username = request.form.get("username", "").strip()
    try:
        user = users.authenticate(db(), username, request.form.get("password", ""),
                                  address=request.remote_addr, policy=throttle_policy())
    except Throttled as error:
        response = make_response(render_template(
            "ui/login.html", next=_local_next(""), username=username,
            error=f"Too many failed sign-ins: wait {error.retry_after} s, then try again."), 429)
        response.headers["Retry-After"] = str(error.retry_after)
        return response
    if user is None:
        return render_template("ui/login.html", next=_local_next(""), username=username,
                               error="Wrong user name or password."), 401
    # A fresh session: nothing from before the login (fixation) survives.
    session.clear()
    start_session(user)
    rotate_csrf_token()
    flash(f"Signed in as {user.username}.", "success")
    return see_other(_local_next())


@bp.post("/logout")
def logout() -> Response:
    session.clear()
    rotate_csrf_token()
    flash("Signed out.", "success")
    return see_other(home_url())


# -- users (site administrators) ------------------------------------------------------------
@bp.get("/users")
@admin_required
def user_list() -> str:
    return render_template("ui/users.html", users=users.list_users(db(), ui_actor()))


# -- robot accounts (site administrators) -------------------------------------------------------
@bp.get("/robots")
@admin_required
def robot_list() -> str:
    actor = ui_actor()
    found = robots.list_robots(db(), actor)
    return render_template("ui/robots.html", robots=found,
                           roles={r.username: robots.robot_roles(db(), actor, r.username)
                                  for r in found})


@bp.post("/robots")
@admin_required
def robot_create() -> Response:
    name = request.form.get("name", "").strip()
    robots.create_robot(db(), ui_actor(), name, request.form.get("description", ""))
    flash(f"Robot account {name} created: give it roles and a token below.", "success")
    return see_other(url_for("ui.robot_page", name=name))


def _robot_page(name: str, new_token: str | None = None, row: ApiToken | None = None) -> str:
    actor = ui_actor()
    robot = robots.get_robot(db(), name)
    return render_template("ui/robot.html", robot=robot, new_token=new_token, new_token_row=row,
                           roles=robots.robot_roles(db(), actor, name),
                           tokens=tokens.list_tokens(db(), actor, name),
                           repository_names=repository_names(), all_roles=list(Role))


@bp.get("/robots/<name>")
@admin_required
def robot_page(name: str) -> str:
    return _robot_page(name)


@bp.post("/robots/<name>/tokens")
@admin_required
def robot_token_create(name: str) -> Response:
    robots.get_robot(db(), name)
    row, plain = create_token_from_form(name)
    return no_store(make_response(_robot_page(name, plain, row)))


@bp.post("/robots/<name>/roles")
@admin_required
def robot_role(name: str) -> Response:
    robots.get_robot(db(), name)
    repository = request.form.get("repository", "").strip()
    choice = request.form.get("role", "")
    role = None if choice == "none" else repositories.parse_role(choice)
    repositories.grant_role(db(), ui_actor(), repository, name, role)
    flash(f"{name}: {role.value if role else 'no role'} on {repository}.", "success")
    return see_other(url_for("ui.robot_page", name=name))


@bp.post("/robots/<name>/delete")
@admin_required
def robot_delete(name: str) -> Response:
    robots.delete_robot(db(), ui_actor(), name)
    flash(f"Robot account {name} deleted; its tokens no longer work.", "success")
    return see_other(url_for("ui.robot_list"))


@bp.post("/users")
@admin_required
def user_create() -> Response:
    username = request.form.get("username", "").strip()
    users.create_user(db(), ui_actor(), username, request.form.get("password", ""),
                      is_admin=request.form.get("admin") == "on")
    flash(f"User {username} created.", "success")
    return see_other(url_for("ui.user_list"))


@bp.post("/users/<username>/delete")
@admin_required
def user_delete(username: str) -> Response:
    users.delete_user(db(), ui_actor(), username)
    flash(f"User {username} deleted.", "success")
    return see_other(url_for("ui.user_list"))


@bp.post("/users/<username>/admin")
@admin_required
def user_admin(username: str) -> Response:
    make_admin = request.form.get("admin") == "1"
    users.set_admin(db(), ui_actor(), username, make_admin)
    flash(f"{username} is {'now' if make_admin else 'no longer'} an administrator.", "success")
    return see_other(url_for("ui.user_list"))


# -- account: password and API tokens ---------------------------------------------------------
def _account_username() -> str:
    """Whose tokens the page manages: yourself, or (administrators) ?user=NAME."""
    me = current_user()
    assert me is not None
    return request.values.get("user", "").strip() or me.username


def repository_names() -> list[str]:
    """What the token form offers to limit a token to (repositories the viewer may read)."""
    return [r.name for r in repositories.list_repositories(db(), ui_actor())]


def create_token_from_form(username: str) -> tuple[ApiToken, str]:
    """One reading of the token form, for people (account page) and robots alike."""
    return tokens.create_token(
        db(), ui_actor(), username, request.form.get("description", "").strip(),
        scope=tokens.parse_scope(request.form.get("scope", "push")),
        repository=request.form.get("repository", "").strip() or None,
        expires_in_days=tokens.parse_expiry(request.form.get("expires", "90")))


def no_store(response: Response) -> Response:
    # A page holding a new token is never stored by the browser's cache.
    response.headers["Cache-Control"] = "no-store"
    return response


@bp.get("/account")
@login_required
def account() -> str:
    username = _account_username()
    return render_template("ui/account.html", username=username,
                           tokens=tokens.list_tokens(db(), ui_actor(), username), new_token=None,
                           repository_names=repository_names())


@bp.post("/account/tokens")
@login_required
def token_create() -> Response:
    username = _account_username()
    row, plain = create_token_from_form(username)
    # Rendered into this response only (not flashed: the flash would sit in the cookie).
    return no_store(make_response(render_template(
        "ui/account.html", username=username, new_token=plain, new_token_row=row,
        tokens=tokens.list_tokens(db(), ui_actor(), username),
        repository_names=repository_names())))


@bp.post("/account/tokens/<int:token_id>/revoke")
@login_required
def token_revoke(token_id: int) -> Response:
    row = tokens.revoke_token(db(), ui_actor(), token_id)
    flash(f"Token {row.hint}… revoked; it no longer works.", "success")
    return see_other(back_url(url_for("ui.account")))


@bp.post("/account/password")
@login_required
def password_change() -> Response:
    username = _account_username()
    me = current_user()
    assert me is not None
    password, repeat = request.form.get("password", ""), request.form.get("repeat", "")
    if password != repeat:
        flash("The two passwords differ; nothing was changed.", "error")
        return see_other(back_url(url_for("ui.account")))
    if username == me.username and users.authenticate(
            db(), me.username, request.form.get("current", ""), address=request.remote_addr,
            policy=throttle_policy()) is None:
        flash("Your current password is wrong; nothing was changed.", "error")
        return see_other(back_url(url_for("ui.account")))
    user = users.set_password(db(), ui_actor(), username, password)
    if user.id == me.id:
        start_session(user)  # other browsers of this user are signed out, this one stays
    flash(f"Password of {username} changed.", "success")
    return see_other(back_url(url_for("ui.account")))
