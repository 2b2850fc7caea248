"""Administering repositories: create, settings (description, visibility), roles, versions,
`latest`, delete. Every change goes through registry.server.services.repositories."""

from __future__ import annotations

from flask import flash, render_template, request, url_for
from werkzeug.wrappers import Response

from registry.server.context import config, db
from registry.server.models import Role
from registry.server.oci.offer import CONVERTING, DONE, convert_tag
from registry.server.services import keys, repositories
from registry.server.services.access import repository_with_role
from registry.server.services.errors import BadRequest

from .blueprint import bp, see_other
from .sessions import admin_required, login_required, ui_actor
from .urls import home_url, repository_url


def settings_url(name: str) -> str:
    return url_for("ui.repository_settings", name=name)


@bp.get("/repositories/new")
@admin_required
def repository_new() -> str:
    return render_template("ui/repository_new.html", domains=config().domains, form={})


@bp.post("/repositories")
@admin_required
def repository_create() -> Response:
    name = request.form.get("name", "").strip().lower()
    domain = request.form.get("domain", config().domains[0])
    # The form asks for the path under a hosted domain; a full name is accepted as well.
    full = name if name.split("/", 1)[0] in config().domains else f"{domain}/{name.strip('/')}"
    repositories.create_repository(
        db(), ui_actor(), full, config().domains, public=request.form.get("visibility") != "private",
        description=request.form.get("description", "").strip())
    flash(f"Repository {full} created. Upload its first image below.", "success")
    return see_other(repository_url(full))


@bp.get("/r/<path:name>/-/settings")
@login_required
def repository_settings(name: str) -> str:
    session = db()
    repository = repository_with_role(session, ui_actor(), name, Role.ADMIN)
    return render_template("ui/repository_settings.html", repository=repository, name=name,
                           roles=repositories.list_roles(session, ui_actor(), name),
                           repository_keys=keys.repository_keys(session, repository),
                           all_roles=list(Role), page_url=repository_url(name))


@bp.post("/r/<path:name>/-/settings")
@login_required
def repository_update(name: str) -> Response:
    visibility = request.form.get("visibility")
    if visibility not in ("public", "private"):
        raise BadRequest("choose public or private", code="bad-visibility")
    repositories.update_repository(db(), ui_actor(), name, public=visibility == "public",
                                   description=request.form.get("description", "").strip())
    flash("Settings saved.", "success")
    return see_other(settings_url(name))


@bp.post("/r/<path:name>/-/delete")
@login_required
def repository_delete(name: str) -> Response:
    if request.form.get("confirm", "").strip() != name:
        raise BadRequest(f"type the repository's full name ({name}) to confirm the deletion",
                         code="not-confirmed")
    repositories.delete_repository(db(), ui_actor(), name)
    flash(f"Repository {name} deleted.", "success")
    return see_other(home_url())


@bp.post("/r/<path:name>/-/roles")
@login_required
def repository_role(name: str) -> Response:
    username = request.form.get("username", "").strip()
    choice = request.form.get("role", "")
    role = None if choice == "none" else repositories.parse_role(choice)
    repositories.grant_role(db(), ui_actor(), name, username, role)
    flash(f"{username}: {role.value if role else 'no role'} on {name}.", "success")
    return see_other(settings_url(name))


@bp.post("/r/<path:name>/-/keys")
@login_required
def repository_key_register(name: str) -> Response:
    added = keys.register_repository_key(db(), ui_actor(), name,
                                         request.form.get("armored", "").strip())
    flash(f"{len(added)} key(s) registered: uploads may carry their signatures.", "success")
    return see_other(settings_url(name))


@bp.post("/r/<path:name>/-/keys/<fingerprint>/remove")
@login_required
def repository_key_remove(name: str, fingerprint: str) -> Response:
    keys.remove_repository_key(db(), ui_actor(), name, fingerprint)
    flash(f"Key {fingerprint} removed.", "success")
    return see_other(settings_url(name))


@bp.post("/r/<path:name>/-/versions/delete")
@login_required
def version_delete(name: str) -> Response:
    version = request.form.get("version", "")
    removed = repositories.delete_version(db(), ui_actor(), name, version,
                                          os=request.form.get("os") or None,
                                          arch=request.form.get("arch") or None)
    flash(f"Deleted {name}:{version} ({removed} image{'s' if removed != 1 else ''}).", "success")
    return see_other(repository_url(name))


@bp.post("/r/<path:name>/-/latest")
@login_required
def latest_set(name: str) -> Response:
    version = request.form.get("version", "")
    repositories.set_latest(db(), ui_actor(), name, version or None)
    flash(f"latest now serves {version}." if version else "latest serves the newest push.",
          "success")
    return see_other(repository_url(name))


@bp.post("/r/<path:name>/-/description")
@login_required
def repository_description(name: str) -> Response:
    repositories.update_repository(db(), ui_actor(), name,
                                   description=request.form.get("description", "").strip())
    flash("Description saved.", "success")
    return see_other(repository_url(name))


@bp.post("/r/<path:name>/-/convert")
def version_convert(name: str) -> Response:
    """The Convert button of an OCI tag not converted yet: what its first fetch would do,
    so anyone who may read the repository may ask (the UI's session decides who that is)."""
    session = db()
    actor = ui_actor()
    repository = repositories.get_repository(session, actor, name)
    version, os_name, arch = (request.form.get(k, "") for k in ("version", "os", "arch"))
    state = convert_tag(session, actor, repository, version, os_name, arch)
    what = f"{name}:{version} for {os_name}/{arch}"
    if state == CONVERTING:
        flash(f"Converting {what}; reload in a moment to see it as a version.", "success")
    elif state == DONE:
        flash(f"{what} is converted.", "success")
    else:
        flash(f"Converting {what} failed before; push the tag again to retry.", "error")
    return see_other(repository_url(name))
