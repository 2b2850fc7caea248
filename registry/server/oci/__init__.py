"""The registry's OCI distribution API (`/v2/`) and the appc offer of images pushed through it.

What docker, podman, skopeo and containerd speak (distribution spec v1.0 plus tag deletion):
manifests (OCI image manifest and index, Docker schema 2 manifest and manifest list; 4 MiB
at most) and blobs (monolithic and chunked uploads, cross-repository mount), tag lists and
the catalog paginated with `n`/`last` (pages capped at 1000), deletion, and the bearer
token flow. Modules: `blueprint` (HTTP), `access` + `tokens` (who may do what), `names`,
`blobs` (verified storage writes, upload sessions), `manifests`, `serving`, `offer` +
`source` (conversion to ACIs with registry.docker), `gc`, `models`, `errors`.

Names: `team/app` is the registry's appc repository `<first domain>/team/app`; a name
starting with a hosted domain is taken verbatim (`example.com/team/app`). OCI-only names
such as `a__b` are refused (NAME_INVALID). Repositories, roles and privacy are the
server's: a push needs the write role (site admins create repositories by pushing), a pull
needs read access, and an outsider cannot tell a private repository from a missing one.

Storage: content under `oci/blobs/<algo>/<xx>/<hex>` in the server's blob storage (local or
S3), committed only after the digest is verified; chunked uploads spool under
`<data dir>/tmp/oci-uploads/` with their state in the database, so every worker of a host
continues them (several hosts: sticky sessions for chunked uploads, or a shared data dir).
Unreferenced OCI content is removed by `gc.collect_oci_garbage`, not by the server's gc.
"""

from __future__ import annotations

from flask import Flask


def init_app(app: Flask) -> None:
    """Register /v2/ and hook the appc offer into the server's distribution path."""
    # Imported here to keep start-up fast: the OCI views load only when an app is built.
    from . import blueprint, offer

    app.register_blueprint(blueprint.bp)
    offer.install(app)
