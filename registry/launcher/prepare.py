"""Stage0: resolve the images, write the pod manifest, render each app's root filesystem.

`prepare_pod` takes a pod from nothing to `prepared` (embryo -> preparing -> prepared). Images
are resolved (and fetched when missing, per the pull policy) *before* the pod directory exists;
any later failure removes the pod directory, so nothing half-made is left behind.
"""

from __future__ import annotations

import os

from registry import jsontext
from registry.records import record

from .errors import LauncherError
from .options import Volume
from .pods import new_embryo, pods_root, remove_tree, write_atomic
from .rootfs import ensure_mount_points, overlay_supported_cached, save_lower
from .seccomp import spec_for

# Function-local imports keep start-up fast: a pod command loads only what it runs (and re,
# typing, pathlib and json never: see pods).
TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

    from _typeshed import StrPath

    from .options import AppOptions, PodOptions
    from .pods import Pod

_join = os.path.join

AC_VERSION = "0.8.11"
RUN_WARNINGS = {  # said once per pod, as the client says its own insecure options
    "capabilities": "apps keep every capability root has (--insecure-options=capabilities)",
    "paths": "the kernel's files in /proc and /sys are neither hidden nor read-only in the "
             "apps (--insecure-options=paths)",
    "seccomp": "apps run without a seccomp filter (--insecure-options=seccomp)",
}
CAPS_RETAIN, CAPS_REMOVE = "os/linux/capabilities-retain-set", "os/linux/capabilities-remove-set"
SECCOMP_RETAIN, SECCOMP_REMOVE = "os/linux/seccomp-retain-set", "os/linux/seccomp-remove-set"
DEFAULT_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"


def _is_hostname(name: str) -> bool:
    """1 to 64 of letters, digits, dots and dashes; a letter or digit at each end."""
    return 0 < len(name) <= 64 and name[0].isascii() and name[0].isalnum() and \
        name[-1].isascii() and name[-1].isalnum() and \
        all(c.isascii() and (c.isalnum() or c in ".-") for c in name)


@record
class ResolvedApp:
    options: AppOptions
    image_id: str
    image_name: str
    image_labels: dict[str, str]
    image_manifest: dict[str, Any]


def open_store(store_dir: StrPath) -> Any:
    from registry.client.store import ImageStore

    return ImageStore(store_dir)


def resolve_images(store: Any, options: PodOptions,
                   log: Any = lambda message: None) -> list[ResolvedApp]:
    """Find (or fetch) every image; errors name the image as the user typed it."""
    from registry.client.errors import ClientError
    from registry.client.store import looks_like_id

    resolved = []
    for app in options.apps:
        try:
            if looks_like_id(app.image):  # already stored: no need for the fetch machinery
                # (and a rendered one is found from the store's files: no index, no sqlite)
                image = store.summary(app.image)
            elif (image := _stored_by_name(app.image, store, options, log)) is None:
                image = _fetch(app.image, store, options, log)
        except ClientError as error:
            raise LauncherError(f"image {app.image}: {error}") from None
        resolved.append(ResolvedApp(app, image.id, image.name, dict(image.labels),
                                    jsontext.loads(image.manifest_bytes)))
    return resolved


def _stored_by_name(ref: str, store: Any, options: PodOptions, log: Any) -> Any | None:
    """The stored image an app string names, when the pull policy lets the store answer.

    The same answer `fetch_image` gives under `new`/`never` (the newest stored image that
    passes the client's own label rule), found without importing the fetch machinery:
    requests, urllib3 and ssl cost ~100 ms of every `pyrkt run NAME`. None sends the reference
    to `_fetch`, which also words every error (bad app string, `never` and nothing stored).
    """
    from registry.client.refs import classify, label_mismatch
    from registry.discovery import AppStringError, parse_app_string

    if options.pull_policy not in ("new", "never") or classify(ref) != "name":
        return None
    try:
        app = parse_app_string(ref)
    except AppStringError:
        return None
    for image in sorted(store.list(), key=lambda stored: stored.import_stamp, reverse=True):
        if label_mismatch(image.name, image.labels, app) is None:
            log(f"using image from the local store for {app}")
            return image
    return None


def _fetch(ref: str, store: Any, options: PodOptions, log: Any) -> Any:
    """The client's fetch: local files (signature checked), names (discovery), per pull policy."""
    from registry.client.fetch import FetchOptions, fetch_image
    from registry.client.insecure import InsecureOptions

    try:
        insecure = InsecureOptions.parse(",".join(sorted(options.insecure)) or None)
    except ValueError as error:
        raise LauncherError(f"--insecure-options: {error}") from None
    return fetch_image(ref, store, FetchOptions(insecure=insecure, config_dirs=options.config_dirs,
                                                pull_policy=options.pull_policy, log=log,
                                                trust_keys_from_https=options.trust_keys_from_https,
                                                ca_bundle=options.ca_bundle))


def _app_name(resolved: ResolvedApp) -> str:
    if resolved.options.name:
        return resolved.options.name
    base = resolved.image_name.rstrip("/").rsplit("/", 1)[-1].lower()
    # each run of characters other than [a-z0-9] as one dash, none at the ends
    words = "".join(c if c.isascii() and c.isalnum() else " " for c in base).split()
    return "-".join(words) or "app"


def _isolators(image_app: dict[str, Any], app: AppOptions) -> list[dict[str, Any]]:
    isolators = [dict(i) for i in image_app.get("isolators") or []]
    overrides: dict[str, dict[str, Any]] = {}
    if app.memory_bytes is not None:
        overrides["resource/memory"] = {"limit": str(app.memory_bytes)}
    if app.cpu_millis is not None:
        overrides["resource/cpu"] = {"limit": f"{app.cpu_millis}m"}
    # A flag replaces every isolator of its kind in the image, as rkt's --caps-*/--seccomp do.
    replaced: set[str] = set(overrides)
    if app.caps_retain is not None or app.caps_remove is not None:
        replaced |= {CAPS_RETAIN, CAPS_REMOVE}
        if app.caps_retain is not None:
            overrides[CAPS_RETAIN] = {"set": app.caps_retain}
        else:
            overrides[CAPS_REMOVE] = {"set": app.caps_remove}
    if app.seccomp is not None:
        replaced |= {SECCOMP_RETAIN, SECCOMP_REMOVE}
        overrides[app.seccomp["name"]] = app.seccomp["value"]
    isolators = [i for i in isolators if i.get("name") not in replaced]
    isolators += [{"name": name, "value": value} for name, value in overrides.items()]
    return isolators


def _environment(image_app: dict[str, Any], app: AppOptions, pod: PodOptions) -> list[dict[str, str]]:
    env: dict[str, str] = dict(os.environ) if pod.inherit_env else {}
    env.setdefault("PATH", DEFAULT_PATH)
    for entry in image_app.get("environment") or []:
        env[entry["name"]] = entry["value"]
    env.update(pod.env)
    env.update(app.env)
    return [{"name": k, "value": v} for k, v in env.items()]


def _app_section(resolved: ResolvedApp, pod: PodOptions) -> dict[str, Any]:
    app = resolved.options
    image_app = dict(resolved.image_manifest.get("app") or {})
    if not image_app and not app.exec_:
        raise LauncherError(f"image {resolved.image_name} has no app to run; give --exec=PATH")
    exec_ = list(image_app.get("exec") or [])
    if app.exec_:
        exec_ = [app.exec_] + (app.args or [])
    elif app.args is not None:
        exec_ = exec_[:1] + app.args
    if not exec_:
        raise LauncherError(f"image {resolved.image_name} names no command (app.exec); give "
                            f"--exec=PATH")
    section = dict(image_app)
    section.update({
        "exec": exec_,
        "user": app.user or image_app.get("user") or "0",
        "group": app.group or image_app.get("group") or "0",
        "environment": _environment(image_app, app, pod),
        "isolators": _isolators(image_app, app),
    })
    if app.working_dir:
        section["workingDirectory"] = app.working_dir
    return {k: v for k, v in section.items() if v not in (None, [], "") or k == "exec"}


def _mounts(name: str, section: dict[str, Any], app: AppOptions, volumes: dict[str, Volume],
            ) -> list[dict[str, str]]:
    mounts: list[dict[str, str]] = []
    targets = set()
    for mount in app.mounts:
        if mount.volume not in volumes:
            raise LauncherError(f"app {name}: --mount volume={mount.volume}: no such volume; "
                                f"define it with --volume {mount.volume},kind=...")
        mounts.append({"volume": mount.volume, "path": mount.target})
        targets.add(mount.target)
    explicit = {m.volume for m in app.mounts}
    for point in section.get("mountPoints") or []:
        if point["name"] in explicit or point["path"] in targets:
            continue
        if point["name"] not in volumes:  # as rkt: an unbound mount point gets an empty volume
            volumes[point["name"]] = Volume(point["name"], "empty",
                                            read_only=bool(point.get("readOnly")))
        mounts.append({"volume": point["name"], "path": point["path"]})
    return mounts


def _ports(apps: list[dict[str, Any]], pod: PodOptions) -> list[dict[str, Any]]:
    """Each `--port` matched to the app port it names (how it gets in: `network.plan`)."""
    forwards = []
    for port in pod.ports:
        owner = next(((app["name"], p) for app in apps for p in app["app"].get("ports") or []
                      if p.get("name") == port.name), None)
        if owner is None:
            raise LauncherError(f"--port {port.name}: no app in the pod declares a port named "
                                f"{port.name}")
        protocol = owner[1].get("protocol", "tcp")
        if protocol not in ("tcp", "udp"):
            raise LauncherError(f"--port {port.name}: protocol {protocol} cannot be forwarded "
                                f"(tcp or udp)")
        forwards.append({"name": port.name, "app": owner[0], "podPort": int(owner[1]["port"]),
                         "hostIP": port.host_ip, "hostPort": port.host_port,
                         "protocol": protocol})
    return forwards


def build_manifest(resolved: list[ResolvedApp], pod: PodOptions) -> tuple[dict[str, Any],
                                                                           list[dict[str, Any]]]:
    """The PodManifest (as a dict) and the port forwards it implies."""
    if pod.hostname is not None and not _is_hostname(pod.hostname):
        raise LauncherError(f'--hostname "{pod.hostname}": letters, digits, dashes and dots, '
                            f"at most 64 characters")
    volumes = {v.name: v for v in pod.volumes}
    if len(volumes) != len(pod.volumes):
        raise LauncherError("--volume: a volume name is given twice")
    apps: list[dict[str, Any]] = []
    for item in resolved:
        name = _app_name(item)
        if any(a["name"] == name for a in apps):
            raise LauncherError(f'two apps would be named "{name}"; give one --name=OTHER after '
                                f"its image")
        section = _app_section(item, pod)
        # a seccomp isolator that cannot be honoured fails the prepare, not the run
        spec_for(section, set(pod.run_insecure()), False, where=f"app {name}")
        entry: dict[str, Any] = {
            "name": name,
            "image": {"name": item.image_name, "id": item.image_id,
                      "labels": [{"name": k, "value": v} for k, v in item.image_labels.items()]},
            "app": section,
            "mounts": _mounts(name, section, item.options, volumes),
        }
        if item.options.readonly_rootfs:
            entry["readOnlyRootFS"] = True
        apps.append(entry)
    if pod.interactive and len(apps) > 1:
        raise LauncherError("--interactive works with one app only")
    forwards = _ports(apps, pod)
    manifest = {
        "acKind": "PodManifest", "acVersion": AC_VERSION, "apps": apps,
        "volumes": [v.to_manifest() for v in volumes.values()],
        "isolators": [], "annotations": [],
        "ports": [{"name": f["name"], "hostPort": f["hostPort"], "hostIP": f["hostIP"]}
                  for f in forwards],
    }
    # Not parsed again by the format core here: each part was checked where it came from (the
    # image manifest when the image was stored, every flag by its parser), and loading the
    # format core's types costs ~8 ms of every run; the tests judge the pods written with
    # PodManifest and actool instead (tests/launcher/test_launcher_lifecycle.py).
    return manifest, forwards


def _render_apps(store: Any, pod: Pod, manifest: dict[str, Any], overlay: bool) -> None:
    from registry.client.errors import ClientError

    os.mkdir(_join(pod.path, "apps"))  # (the pod's directory is new: nothing to look up)
    if overlay:
        ensure_mount_points(pod.store_dir)
    for app in manifest["apps"]:
        app_dir = pod.app_dir(app["name"])
        os.mkdir(app_dir)
        try:
            if overlay:
                tree = store.render(app["image"]["id"], overlay=True)
                for sub in ("upper", "work", "rootfs"):
                    os.mkdir(_join(app_dir, sub))
                save_lower(app_dir, _join(tree, "rootfs"))
            else:
                store.render(app["image"]["id"], _join(app_dir, "image"))
                os.rename(_join(app_dir, "image", "rootfs"), _join(app_dir, "rootfs"))
        except ClientError as error:
            raise LauncherError(f"app {app['name']}: {error}") from None


def _make_empty_volumes(pod: Pod, manifest: dict[str, Any]) -> None:
    for volume in manifest["volumes"]:
        if volume["kind"] != "empty":
            continue
        path = _join(pod.path, "volumes", volume["name"])
        os.makedirs(path)
        os.chmod(path, int(volume.get("mode", "0755"), 8))
        os.chown(path, int(volume.get("uid", 0)), int(volume.get("gid", 0)))


def prepare_pod(store_dir: StrPath, options: PodOptions, *, log: Any = lambda message: None) -> Pod:
    """Resolve, then build a prepared pod; returns it in state `prepared` (unlocked)."""
    # loaded here, like the client's fetch machinery, only when a pod is prepared
    from .network.plan import assign_ports, plan

    networks = plan(options.net, options.config_dirs)  # a bad --net fails before any fetch
    for name in options.run_insecure():
        if name in RUN_WARNINGS:  # limits: warned per limit, and only if one is left out
            log(f"warning: {RUN_WARNINGS[name]}")
    store = open_store(store_dir)
    resolved = resolve_images(store, options, log)
    manifest, forwards = build_manifest(resolved, options)
    assign_ports(forwards, networks)
    pod, lock = new_embryo(store_dir)
    try:
        with lock:
            pod.move("prepare")
            overlay = options.overlay
            if overlay is None:
                overlay = overlay_supported_cached(pod.path, _join(pods_root(store_dir),
                                                                   ".overlay"))
            runtime = {
                **networks,
                "dns": options.dns.to_json(),
                "hostname": options.hostname or f"rkt-{pod.uuid}",
                "interactive": options.interactive,
                "stage1": options.stage1,
                "rootfs": "overlay" if overlay else "copy",
                "forwards": forwards,
                "insecure": options.run_insecure(),
            }
            _render_apps(store, pod, manifest, overlay)
            store.close()  # done with the index: the pod's forked processes keep no handle on it
            _make_empty_volumes(pod, manifest)
            # compact: json's C encoder (indent= falls back to its Python one, ~1 ms a pod);
            # `pyrkt cat-manifest` prints the manifest pretty when asked
            write_atomic(_join(pod.path, "runtime.json"), jsontext.dumps(runtime))
            write_atomic(_join(pod.path, "pod"), jsontext.dumps(manifest))
            pod.move("prepared")
            pod.locked = False
            return pod
    except BaseException:
        remove_tree(pod.path)
        raise

