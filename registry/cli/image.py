"""`pyrkt image ...`: the local image store (rkt's `rkt image` commands, plus render and verify)."""

from __future__ import annotations

import json
from datetime import timedelta
from pathlib import Path

import click

from registry.client.errors import ImageNotFound, StoreError
from registry.client.store import ImageStore, StoredImage, looks_like_id

from . import views
from .options import ClientContext, click_options, client_options

# Function-local imports keep start-up fast: each command loads only the parts it runs.


@click.group("image", epilog="""\b
Examples:
  pyrkt image list
  pyrkt image cat-manifest --pretty-print example.com/app:1.0
  pyrkt image export example.com/app:1.0 app.aci
  pyrkt image render example.com/app:1.0 ./app-tree
  pyrkt image rm example.com/app:1.0
  pyrkt image gc --grace-period=1h

\b
IMAGE is an image ID (or an unambiguous prefix of it) or name[:version].
""")
def image() -> None:
    """Operate on the images of the local store."""


def _resolve(store: ImageStore, ref: str) -> StoredImage:
    """An image by ID (prefix) or, failing that, by name[:version] (the newest of that name)."""
    try:
        return store.get(ref)
    except ImageNotFound:
        if looks_like_id(ref):
            raise  # sha512-...: no such ID, or an ambiguous prefix
        name, _, version = ref.partition(":")
        found = store.find(name, {"version": version} if version else None)
        if found is None:
            raise StoreError(f'no image "{ref}" in the store (give an image ID or a '
                             f"name[:version])") from None
        return found


_existing_store = views.existing_store


def _store_for(client: ClientContext, ref: str) -> ImageStore:
    store = _existing_store(client)
    if store is None:
        raise StoreError(f'no image "{ref}" in the store (the store {client.store_dir} is empty)')
    return store


@image.command("list", epilog="""\b
Examples:
  pyrkt image list --fields=id,name,labels --sort=name
  pyrkt image list --format=json-pretty
""")
@click_options(views.IMAGE_LIST_FLAGS)
@client_options
def list_images(fields: str, sort_by: str, order: str, full: bool, no_legend: bool, output: str,
                client: ClientContext) -> None:
    """List the stored images (rkt's columns)."""
    try:
        views.check_image_list(fields, sort_by)
    except views.FieldError as error:
        raise click.BadParameter(str(error)) from None
    views.image_list_command(client, fields, sort_by, order, full, no_legend, output)


@image.command("rm", epilog="""\b
Examples:
  pyrkt image rm sha512-6f1e0c2b                  by (a prefix of) the image ID
  pyrkt image rm example.com/app:1.0              by name and version (the newest match)
""")
@click.argument("images", nargs=-1, required=True, metavar="IMAGE...")
@client_options
def remove(images: tuple[str, ...], client: ClientContext) -> None:
    """Remove images (by ID or name[:version]) from the store."""
    store = _store_for(client, images[0])
    in_use = _images_in_use(store)
    failed = 0
    for ref in images:
        try:
            target = _resolve(store, ref)
            if target.id in in_use:
                raise StoreError(f"image {target.short_id} ({target.name}) is used by a running "
                                 f"pod; stop the pod first")
            removed = store.remove(target.id)
        except StoreError as error:
            click.echo(f"pyrkt: {error}", err=True)
            failed += 1
            continue
        click.echo(f'successfully removed image "{removed.id}"', err=True)
    if failed:
        raise StoreError(f"{failed} image(s) could not be removed")


def _images_in_use(store: ImageStore) -> set[str]:
    """IDs of images that running pods use (the launcher knows; none without it)."""
    try:
        from registry.launcher import images_in_use
    except ImportError:
        return set()
    return set(images_in_use(store.directory))


def _duration(text: str) -> timedelta:
    units = {"s": 1, "m": 60, "h": 3600, "d": 86400}
    try:
        total = 0.0
        number = ""
        for ch in text.strip():
            if ch.isdigit() or ch == ".":
                number += ch
            else:
                total += float(number) * units[ch]
                number = ""
        if number:
            total += float(number)
        return timedelta(seconds=total)
    except (KeyError, ValueError):
        raise click.BadParameter(f'"{text}" is not a duration like 30m, 24h, 1h30m') from None


@image.command("gc", epilog="""\b
Example:
  pyrkt image gc --grace-period=30m
""")
@click.option("--grace-period", default="24h", show_default=True,
              help="keep images used within this long (e.g. 30m, 24h)")
@client_options
def gc(grace_period: str, client: ClientContext) -> None:
    """Remove images not used within the grace period (never those of running pods)."""
    store = _existing_store(client)
    if store is None:
        return  # nothing was ever stored
    for removed in store.gc(_duration(grace_period), in_use=_images_in_use(store)):
        click.echo(f'successfully removed image "{removed.id}" ({removed.name})', err=True)


@image.command("export", epilog="""\b
Example:
  pyrkt image export example.com/app:1.0 app.aci
""")
@click.argument("ref", metavar="IMAGE")
@click.argument("dest", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--overwrite", is_flag=True, help="replace DEST if it exists")
@client_options
def export(ref: str, dest: Path, overwrite: bool, client: ClientContext) -> None:
    """Write a stored image to an .aci file, exactly as it was fetched."""
    store = _store_for(client, ref)
    store.export(_resolve(store, ref).id, dest, overwrite=overwrite)


@image.command("extract", epilog="""\b
Example:
  pyrkt image extract --rootfs-only example.com/app:1.0 ./rootfs
""")
@click.argument("ref", metavar="IMAGE")
@click.argument("dest", type=click.Path(file_okay=False, path_type=Path))
@click.option("--rootfs-only", is_flag=True, help="only the root filesystem, not the manifest")
@client_options
def extract(ref: str, dest: Path, rootfs_only: bool, client: ClientContext) -> None:
    """Extract one image (without its dependencies) into a new directory."""
    store = _store_for(client, ref)
    store.extract(_resolve(store, ref).id, dest, rootfs_only=rootfs_only)


@image.command("render", epilog="""\b
Example:
  pyrkt image render example.com/app:1.0 ./app-tree
""")
@click.argument("ref", metavar="IMAGE")
@click.argument("dest", type=click.Path(file_okay=False, path_type=Path))
@click.option("--rootfs-only", is_flag=True, help="DEST gets the rootfs contents only")
@client_options
def render(ref: str, dest: Path, rootfs_only: bool, client: ClientContext) -> None:
    """Render an image with its dependencies applied and pathWhitelist honoured."""
    store = _store_for(client, ref)
    store.render(_resolve(store, ref).id, dest, rootfs_only=rootfs_only)


@image.command("cat-manifest")
@click.argument("ref", metavar="IMAGE")
@click.option("--pretty-print", is_flag=True, help="indent the JSON")
@client_options
def cat_manifest(ref: str, pretty_print: bool, client: ClientContext) -> None:
    """Print an image's manifest."""
    img = _resolve(_store_for(client, ref), ref)
    if pretty_print:
        click.echo(json.dumps(img.manifest_dict, indent=4))
    else:
        click.echo(img.manifest_bytes.decode("utf-8", "replace").rstrip("\n"))


@image.command("verify")
@click.argument("images", nargs=-1, metavar="[IMAGE...]")
@client_options
def verify(images: tuple[str, ...], client: ClientContext) -> None:
    """Re-hash stored images and re-check their signatures against the trusted keys."""
    from registry.client.verify import verify_stored

    store = _existing_store(client)
    if store is None:
        if images:
            _store_for(client, images[0])
        return
    targets = [_resolve(store, ref) for ref in images] or store.list()
    failed = 0
    for img in targets:
        problem = verify_stored(store, img, client.dirs)
        if problem:
            failed += 1
            click.echo(f"{img.short_id}  {img.name}: FAILED: {problem}")
        else:
            note = "" if img.has_signature else " (hash only: fetched without a signature)"
            click.echo(f"{img.short_id}  {img.name}: ok{note}")
    if failed:
        raise StoreError(f"{failed} of {len(targets)} image(s) failed verification")
