"""Image and pod manifests: hand-written examples in the style of appc's examples/, every
rule refused with a message naming field and rule, and the object API."""

from __future__ import annotations

import copy
import json
from typing import Any

import pytest

from registry.aci import (
    App,
    ImageManifest,
    Isolator,
    Label,
    ManifestError,
    PodManifest,
    parse_quantity,
)

IMAGE_ID = "sha512-" + "ab" * 64

REDUCE_WORKER: dict[str, Any] = {
    "acKind": "ImageManifest",
    "acVersion": "0.8.11",
    "name": "example.com/reduce-worker",
    "labels": [
        {"name": "version", "value": "1.0.0"},
        {"name": "arch", "value": "amd64"},
        {"name": "os", "value": "linux"},
    ],
    "app": {
        "exec": ["/usr/bin/reduce-worker", "--quiet"],
        "user": "100",
        "group": "300",
        "supplementaryGIDs": [400, 500],
        "eventHandlers": [
            {"exec": ["/usr/bin/data-downloader"], "name": "pre-start"},
            {"exec": ["/usr/bin/deregister-worker", "--verbose"], "name": "post-stop"},
        ],
        "workingDirectory": "/opt/work",
        "environment": [{"name": "REDUCE_WORKER_DEBUG", "value": "true"},
                        {"name": "_private.setting-2", "value": ""}],
        "isolators": [
            {"name": "resource/cpu", "value": {"request": "250m", "limit": "500m"}},
            {"name": "resource/memory", "value": {"request": "1G", "limit": "2Gi"}},
            {"name": "os/linux/capabilities-retain-set",
             "value": {"set": ["CAP_NET_BIND_SERVICE", "CAP_SYS_ADMIN"]}},
            {"name": "os/linux/no-new-privileges", "value": True},
            {"name": "os/linux/seccomp-remove-set",
             "value": {"set": ["@appc.io/empty", "reboot"], "errno": "ENOTSUP"}},
            {"name": "os/unix/sysctl", "value": {"net.ipv4.tcp_mtu_probing": "1"}},
            {"name": "os/linux/oom-score-adj", "value": 100},
            {"name": "os/linux/cpu-shares", "value": 1024},
            {"name": "resource/block-bandwidth", "value": {"default": True, "limit": "1M"}},
            {"name": "os/linux/selinux-context",
             "value": {"user": "system_u", "role": "system_r", "type": "svirt_lxc_net_t",
                       "level": "s0:c1,c2"}},
        ],
        "mountPoints": [{"name": "database", "path": "/var/lib/db", "readOnly": True},
                        {"name": "scratch", "path": "/tmp/scratch"}],
        "ports": [{"name": "health", "port": 4000, "protocol": "tcp", "socketActivated": True},
                  {"name": "workers", "port": 5000, "protocol": "udp", "count": 16}],
        "userAnnotations": {"team": "data"},
        "userLabels": {"tier": "backend"},
    },
    "dependencies": [
        {"imageName": "example.com/reduce-worker-base", "imageID": IMAGE_ID,
         "labels": [{"name": "os", "value": "linux"}, {"name": "env", "value": "canary"}],
         "size": 123456},
        {"imageName": "example.com/certificates"},
    ],
    "pathWhitelist": ["/etc/ca/example.com/crt", "/usr/bin/map-reduce-worker",
                      "/etc/systemd/system/"],
    "annotations": [
        {"name": "authors", "value": "Carly Container <carly@example.com>"},
        {"name": "created", "value": "2014-10-27T19:32:27.67021798Z"},
        {"name": "documentation", "value": "https://example.com/docs"},
        {"name": "homepage", "value": "https://example.com"},
    ],
}

POD: dict[str, Any] = {
    "acVersion": "0.8.11",
    "acKind": "PodManifest",
    "apps": [
        {"name": "reduce-worker",
         "image": {"name": "example.com/reduce-worker", "id": IMAGE_ID},
         "app": {"exec": ["/bin/reduce-worker", "--data-dir=/mnt/foo"], "user": "0",
                 "group": "0", "mountPoints": [{"name": "work", "path": "/mnt/foo"}],
                 "isolators": [{"name": "resource/memory", "value": {"limit": "1G"}}]},
         "mounts": [{"volume": "work", "path": "/mnt/foo"}],
         "readOnlyRootFS": True},
        {"name": "backup",
         "image": {"name": "example.com/worker-backup", "id": "sha512-" + "cd" * 64,
                   "labels": [{"name": "version", "value": "latest"}]},
         "mounts": [{"volume": "database", "path": "/db"},
                    {"volume": "scratch", "path": "/out",
                     "appVolume": {"name": "scratch", "kind": "empty", "mode": "0700"}}],
         "annotations": [{"name": "foo", "value": "baz"}]},
    ],
    "volumes": [
        {"name": "database", "kind": "host", "source": "/opt/tenant1/database",
         "readOnly": True, "recursive": False},
        {"name": "work", "kind": "empty", "mode": "0750", "uid": 100, "gid": 300},
    ],
    "isolators": [{"name": "resource/memory", "value": {"limit": "4G"}}],
    "annotations": [{"name": "ip-address", "value": "10.1.2.3"}],
    "ports": [{"name": "health", "hostPort": 8080, "hostIP": "127.0.0.1"},
              {"name": "workers", "hostPort": 9000,
               "podPort": {"name": "workers", "protocol": "udp", "port": 5000}}],
    "userAnnotations": {"owner": "ops"},
    "userLabels": {"stage": "test"},
}


def test_full_image_manifest_parses_and_round_trips() -> None:
    manifest = ImageManifest.from_dict(REDUCE_WORKER)
    assert manifest.name == "example.com/reduce-worker"
    assert manifest.label("os") == "linux" and manifest.label("missing") is None
    assert manifest.app is not None and manifest.app.user == "100"
    assert manifest.app.ports[1].count == 16 and manifest.app.ports[0].count == 1
    assert manifest.app.isolators[0] == Isolator("resource/cpu",
                                                 {"request": "250m", "limit": "500m"})
    assert manifest.dependencies[0].label("env") == "canary"
    assert manifest.path_whitelist[0] == "/etc/ca/example.com/crt"
    assert ImageManifest.from_json(manifest.to_json()) == manifest
    assert ImageManifest.from_json(manifest.to_json(pretty=True)) == manifest
    assert json.loads(manifest.to_json(pretty=True)) == json.loads(manifest.to_json())


def test_serialized_form_is_appc_json() -> None:
    data = ImageManifest.from_dict(REDUCE_WORKER).to_dict()
    expected = copy.deepcopy(REDUCE_WORKER)
    expected["app"]["ports"][0]["count"] = 1        # appc fills the default count
    expected["app"]["ports"][1]["socketActivated"] = False
    assert data == expected
    assert list(data)[:3] == ["acKind", "acVersion", "name"]


def test_minimal_manifest_and_empty_app_round_trip() -> None:
    minimal = {"acKind": "ImageManifest", "acVersion": "0.8.11", "name": "example.com/test"}
    manifest = ImageManifest.from_dict(minimal)
    assert manifest.app is None and manifest.labels == []
    assert manifest.to_dict() == minimal


def test_pod_manifest_parses_and_round_trips() -> None:
    pod = PodManifest.from_dict(POD)
    assert [app.name for app in pod.apps] == ["reduce-worker", "backup"]
    assert pod.app("backup").image.labels == [Label("version", "latest")]
    assert pod.volumes[1].mode == "0750"
    assert pod.apps[1].mounts[1].app_volume.uid == 0  # empty volumes default to 0:0 0755
    assert PodManifest.from_json(pod.to_json()) == pod
    assert PodManifest.from_json(pod.to_json(pretty=True)) == pod


def test_object_api_builds_valid_manifests() -> None:
    manifest = ImageManifest(name="example.com/built", labels=[Label("os", "linux")],
                             app=App(exec=["/bin/sh"], user="0", group="0"))
    assert ImageManifest.from_json(manifest.to_json()) == manifest
    manifest.labels.append(Label("arch", "x86_64"))
    with pytest.raises(ManifestError, match='labels: bad arch "x86_64" for os "linux"'):
        manifest.to_json()


def test_go_style_case_insensitive_members() -> None:
    app = App.from_dict({"Exec": ["/a"], "User": "0", "Group": "0"})
    assert app.exec == ["/a"] and app.user == "0"


def _image(**changes: Any) -> dict[str, Any]:
    manifest = copy.deepcopy(REDUCE_WORKER)
    for path, value in changes.items():
        target = manifest
        keys = path.split("__")
        for key in keys[:-1]:
            target = target[int(key)] if isinstance(target, list) else target[key]
        last = keys[-1]
        if value is _DELETE:
            del target[last]
        elif isinstance(target, list):
            target[int(last)] = value
        else:
            target[last] = value
    return manifest


_DELETE = object()

BAD_IMAGES = [
    # (changes, fragment of the error message: field and rule)
    ({"acKind": "PodManifest"}, 'acKind: must be "ImageManifest"'),
    ({"acVersion": _DELETE}, "acVersion: must be set"),
    ({"acVersion": "0.8"}, "acVersion: '0.8' is not a semantic version"),
    ({"name": _DELETE}, "name: must be a non-empty AC Identifier"),
    ({"name": "Example.com/App"}, "name: 'Example.com/App' is not an AC Identifier"),
    ({"name": "example.com//app"}, "is not an AC Identifier"),
    ({"name": "-example.com"}, "is not an AC Identifier"),
    ({"labels__0__name": "name"}, 'labels: invalid label name "name"'),
    ({"labels__0__name": "os"}, 'labels: duplicate label "os"'),
    ({"labels__0__name": "Version"}, "labels[0].name: 'Version' is not an AC Identifier"),
    ({"labels__1__value": "x86_64"}, 'labels: bad arch "x86_64" for os "linux"'),
    ({"labels__2__value": "windows"}, 'labels: bad os "windows"'),
    ({"labels__0__value": 1}, "labels[0].value: must be a string"),
    ({"labels": {"os": "linux"}}, "labels: must be a list"),
    ({"app__user": ""}, "app.user: is required"),
    ({"app__group": _DELETE}, "app.group: is required"),
    ({"app__exec": "/bin/sh"}, "app.exec: must be a list"),
    ({"app__exec": ["/bin/sh", 3]}, "app.exec[1]: must be a string"),
    ({"app__workingDirectory": "opt"}, "app.workingDirectory: 'opt' must be absolute"),
    ({"app__supplementaryGIDs": [-1]}, "app.supplementaryGIDs[0]: must be a non-negative"),
    ({"app__eventHandlers__0__name": "post-stop"}, 'app.eventHandlers: duplicate eventHandler "post-stop"'),
    ({"app__eventHandlers__0__name": "on-crash"}, "app.eventHandlers[0].name: bad eventHandler name"),
    ({"app__environment__0__name": "1ABC"}, "app.environment[0].name: '1ABC' is not a valid environment"),
    ({"app__environment__0__name": "A B"}, "is not a valid environment variable name"),
    ({"app__environment__1__name": "REDUCE_WORKER_DEBUG"}, 'app.environment: duplicate environment variable'),
    ({"app__isolators__0__name": "resource/gpu"}, "app.isolators[0].name: unknown isolator 'resource/gpu'"),
    ({"app__isolators__0__value": {"limit": "lots"}}, "app.isolators[0].value.limit: 'lots' is not a quantity"),
    ({"app__isolators__0__value": {"limit": "500m", "default": True}}, "app.isolators[0].value.default: must be false"),
    ({"app__isolators__1__value": {"limit": "-1G"}}, "app.isolators[1].value.limit: must not be negative"),
    ({"app__isolators__1__value": {"limit": "1 G"}}, "is not a quantity"),
    ({"app__isolators__2__value": {"set": []}}, "app.isolators[2].value.set: must be a non-empty list"),
    ({"app__isolators__3": {"name": "os/linux/capabilities-remove-set", "value": {"set": ["CAP_KILL"]}}}, "app.isolators: os/linux/capabilities-remove-set conflicts with os/linux/capabilities-retain-set"),
    ({"app__isolators__3__value": "yes"}, "app.isolators[3].value: must be a boolean"),
    ({"app__isolators__4__value": {"set": ["reboot"], "errno": "enotsup"}}, "app.isolators[4].value.errno"),
    ({"app__isolators__5__value": {"kernel.x": 1}}, "app.isolators[5].value.kernel.x: must be a string"),
    ({"app__isolators__6__value": 1001}, "app.isolators[6].value: must be an integer between -1000 and 1000"),
    ({"app__isolators__7__value": 1}, "app.isolators[7].value: must be an integer between 2 and 262144"),
    ({"app__isolators__8__value": {"default": False, "limit": "1M"}}, "app.isolators[8].value.default: must be true"),
    ({"app__isolators__8__value": {"default": True, "request": "1M"}}, "app.isolators[8].value.request: not supported"),
    ({"app__isolators__9__value": {"user": "a:b", "role": "r", "type": "t", "level": "s0"}}, "app.isolators[9].value.user: invalid user"),
    ({"app__isolators__1__value": 5}, "app.isolators[1].value: must be an object"),
    ({"app__mountPoints__0__name": "Data"}, "app.mountPoints[0].name: 'Data' is not an AC Name"),
    ({"app__mountPoints__0__name": "data.base"}, "is not an AC Name"),
    ({"app__mountPoints__0__path": ""}, "app.mountPoints[0].path: must be set"),
    ({"app__mountPoints__1__name": "database"}, 'app.mountPoints: duplicate mount point "database"'),
    ({"app__ports__0__port": 0}, "app.ports[0].port: 0 not in range 1-65535"),
    ({"app__ports__0__port": 65536}, "app.ports[0].port: 65536 not in range 1-65535"),
    ({"app__ports__1__count": 60600}, "app.ports[1].count: port range 5000+60600 ends past 65535"),
    ({"app__ports__0__port": "4000"}, "app.ports[0].port: must be an integer"),
    ({"app__ports__1__name": "health"}, 'app.ports: duplicate port "health"'),
    ({"app__ports__0__socketActivated": "yes"}, "app.ports[0].socketActivated: must be a boolean"),
    ({"app__userLabels": {"a": 1}}, "app.userLabels.a: must be a string"),
    ({"dependencies__0__imageName": "Base"}, "dependencies[0].imageName: 'Base' is not an AC Identifier"),
    ({"dependencies__0__imageID": "md5-abc"}, "dependencies[0].imageID: 'md5-abc' is not an image ID"),
    ({"dependencies__0__size": -5}, "dependencies[0].size: must not be negative"),
    ({"dependencies__0__labels__0__value": "plan9"}, 'dependencies[0].labels: bad os "plan9"'),
    ({"pathWhitelist": ["etc/passwd"]}, "pathWhitelist[0]: 'etc/passwd' must be an absolute path"),
    ({"annotations__1__value": "yesterday"}, "annotations.created: 'yesterday' is not an RFC 3339 date"),
    ({"annotations__1__value": "2014-13-27T19:32:27Z"}, "is not an RFC 3339 date"),
    ({"annotations__3__value": "ftp://example.com"}, "annotations.homepage: 'ftp://example.com' is not an http(s) URL"),
    ({"annotations__2__value": "docs"}, "annotations.documentation: 'docs' is not an http(s) URL"),
    ({"annotations__2__name": "homepage"}, 'annotations: duplicate annotation "homepage"'),
]


@pytest.mark.parametrize(("changes", "message"), BAD_IMAGES,
                         ids=[message[:50] for _, message in BAD_IMAGES])
def test_invalid_image_manifest_names_field_and_rule(changes: dict[str, Any],
                                                     message: str) -> None:
    with pytest.raises(ManifestError) as caught:
        ImageManifest.from_dict(_image(**changes))
    assert message in str(caught.value)
    assert caught.value.reason == "invalid-manifest"


def _pod(**changes: Any) -> dict[str, Any]:
    pod = copy.deepcopy(POD)
    for path, value in changes.items():
        target = pod
        keys = path.split("__")
        for key in keys[:-1]:
            target = target[int(key)] if isinstance(target, list) else target[key]
        if value is _DELETE:
            del target[keys[-1]]
        elif isinstance(target, list):
            target[int(keys[-1])] = value
        else:
            target[keys[-1]] = value
    return pod


BAD_PODS = [
    ({"acKind": "ImageManifest"}, 'acKind: must be "PodManifest"'),
    ({"apps__1__name": "reduce-worker"}, 'apps: duplicate app name "reduce-worker"'),
    ({"apps__0__name": "reduce_worker"}, "apps[0].name: 'reduce_worker' is not an AC Name"),
    ({"apps__0__image__id": "sha256-abc"}, "apps[0].image.id: 'sha256-abc' is not an image ID"),
    ({"apps__0__image": _DELETE}, "apps[0].image: is required"),
    ({"apps__0__image__name": "Upper"}, "apps[0].image.name: 'Upper' is not an AC Identifier"),
    ({"apps__0__mounts__0__volume": "Work"}, "apps[0].mounts[0].volume: 'Work' is not an AC Name"),
    ({"apps__0__mounts__0__path": ""}, "apps[0].mounts[0].path: must be set"),
    ({"apps__0__app__user": ""}, "apps[0].app.user: is required"),
    ({"volumes__1__name": "database"}, 'volumes: duplicate volume name "database"'),
    ({"volumes__0__kind": "nfs"}, "volumes[0].kind: 'nfs' must be \"host\" or \"empty\""),
    ({"volumes__0__source": "relative/path"}, "volumes[0].source: 'relative/path' must be an absolute path"),
    ({"volumes__0__source": _DELETE}, "volumes[0].source: is required for a host volume"),
    ({"volumes__0__mode": "0755"}, "volumes[0].mode: cannot be set for a host volume"),
    ({"volumes__1__source": "/srv"}, "volumes[1].source: must be empty for an empty volume"),
    ({"ports__0__hostPort": 70000}, "ports[0].hostPort: 70000 not in range 0-65535"),
    ({"ports__0__hostIP": "localhost"}, "ports[0].hostIP: 'localhost' is not an IP address"),
    ({"ports__1__name": "health"}, 'ports: duplicate port name "health"'),
    ({"isolators__0__value": {"limit": "4X"}}, "isolators[0].value.limit: '4X' is not a quantity"),
    ({"annotations__0__name": "IP"}, "annotations[0].name: 'IP' is not an AC Identifier"),
]


@pytest.mark.parametrize(("changes", "message"), BAD_PODS,
                         ids=[message[:50] for _, message in BAD_PODS])
def test_invalid_pod_manifest_names_field_and_rule(changes: dict[str, Any], message: str) -> None:
    with pytest.raises(ManifestError) as caught:
        PodManifest.from_dict(_pod(**changes))
    assert message in str(caught.value)


@pytest.mark.parametrize("text", [b"", b"{", b"[]", b'"manifest"', b"\xff\xfe", b"null",
                                  '{"acKind": "ImageManifest"}'.encode("utf-16")])
def test_not_a_json_object(text: bytes) -> None:
    with pytest.raises(ManifestError) as caught:
        ImageManifest.from_json(text)
    assert caught.value.reason == "invalid-json"
    assert str(caught.value).startswith("manifest:")


@pytest.mark.parametrize(("quantity", "value"), [
    ("500m", 0.5), ("512M", 512e6), ("1Gi", 2**30), ("2", 2), (3, 3), ("1.5k", 1500),
    ("1e3", 1000), ("100Ki", 102400)])
def test_quantities(quantity: str | int, value: float) -> None:
    assert parse_quantity(quantity, "limit") == pytest.approx(value)


@pytest.mark.parametrize("quantity", ["", "G", "1g", "1 G", "1.2.3", "0x10", True, None, "1Gib"])
def test_bad_quantities(quantity: Any) -> None:
    with pytest.raises(ManifestError, match="limit: .* is not a quantity"):
        parse_quantity(quantity, "limit")
