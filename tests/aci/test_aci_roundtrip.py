"""Property: for any valid manifest, parse -> serialize -> parse is the identity (objects),
and serialize -> parse -> serialize gives the same JSON (bytes)."""

from __future__ import annotations

from typing import Any

from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st

from registry.aci import VALID_OS_ARCH, ImageManifest, PodManifest
from registry.aci.names import AC_IDENTIFIER, AC_NAME, ENV_NAME

identifiers = st.from_regex(AC_IDENTIFIER, fullmatch=True).filter(lambda s: len(s) < 60)
ac_names = st.from_regex(AC_NAME, fullmatch=True).filter(lambda s: len(s) < 40)
env_names = st.from_regex(ENV_NAME, fullmatch=True).filter(lambda s: len(s) < 40)
texts = st.text(max_size=30)
paths = st.lists(st.from_regex(r"[a-zA-Z0-9._-]{1,12}", fullmatch=True), min_size=1,
                 max_size=4).map(lambda parts: "/" + "/".join(parts))
quantities = st.one_of(
    st.integers(0, 10**6),
    st.builds(lambda n, s: f"{n}{s}", st.integers(0, 10**5),
              st.sampled_from(["", "m", "k", "M", "G", "Ki", "Mi", "Gi", "e3"])))
image_ids = st.text("0123456789abcdef", min_size=128, max_size=128).map(lambda h: "sha512-" + h)


def unique_by_name(items: st.SearchStrategy[dict[str, Any]], key: str = "name",
                   max_size: int = 4) -> st.SearchStrategy[list[dict[str, Any]]]:
    return st.lists(items, max_size=max_size, unique_by=lambda item: item[key])


@st.composite
def labels(draw: st.DrawFn) -> list[dict[str, str]]:
    result = []
    if draw(st.booleans()):
        os_name = draw(st.sampled_from(sorted(VALID_OS_ARCH)))
        result.append({"name": "os", "value": os_name})
        if draw(st.booleans()):
            result.append({"name": "arch", "value": draw(st.sampled_from(VALID_OS_ARCH[os_name]))})
    others = draw(unique_by_name(st.fixed_dictionaries(
        {"name": identifiers.filter(lambda n: n not in ("name", "os", "arch")),
         "value": texts})))
    result.extend(others)
    return draw(st.permutations(result))


def isolator_values() -> st.SearchStrategy[dict[str, Any]]:
    resource = st.fixed_dictionaries({}, optional={"request": quantities, "limit": quantities})
    string_set = st.fixed_dictionaries({"set": st.lists(st.from_regex(r"CAP_[A-Z_]{1,10}",
                                                                      fullmatch=True),
                                                        min_size=1, max_size=3)})
    return st.one_of(
        st.fixed_dictionaries({"name": st.sampled_from(["resource/cpu", "resource/memory"]),
                               "value": resource}),
        st.fixed_dictionaries({"name": st.just("resource/network-bandwidth"),
                               "value": st.fixed_dictionaries({"default": st.just(True)},
                                                              optional={"limit": quantities})}),
        st.fixed_dictionaries({"name": st.just("os/linux/capabilities-retain-set"),
                               "value": string_set}),
        st.fixed_dictionaries({"name": st.just("os/linux/no-new-privileges"),
                               "value": st.booleans()}),
        st.fixed_dictionaries({"name": st.just("os/linux/oom-score-adj"),
                               "value": st.integers(-1000, 1000)}),
    )


@st.composite
def ports(draw: st.DrawFn) -> dict[str, Any]:
    number = draw(st.integers(1, 65535))
    return {"name": draw(ac_names), "protocol": draw(st.sampled_from(["tcp", "udp"])),
            "port": number, "count": draw(st.integers(1, 65536 - number)),
            "socketActivated": draw(st.booleans())}


def apps() -> st.SearchStrategy[dict[str, Any]]:
    return st.fixed_dictionaries(
        {"exec": st.lists(texts, max_size=3), "user": texts.filter(bool),
         "group": texts.filter(bool)},
        optional={
            "supplementaryGIDs": st.lists(st.integers(0, 2**31), max_size=3),
            "eventHandlers": st.lists(
                st.fixed_dictionaries({"name": st.sampled_from(["pre-start", "post-stop"]),
                                       "exec": st.lists(texts, max_size=2)}),
                max_size=2, unique_by=lambda handler: handler["name"]),
            "workingDirectory": paths,
            "environment": unique_by_name(st.fixed_dictionaries({"name": env_names,
                                                                  "value": texts})),
            "mountPoints": unique_by_name(st.fixed_dictionaries(
                {"name": ac_names, "path": paths}, optional={"readOnly": st.just(True)})),
            "ports": unique_by_name(ports()),
            "isolators": st.lists(isolator_values(), max_size=3, unique_by=lambda i: i["name"]),
            "userAnnotations": st.dictionaries(texts, texts, max_size=2),
            "userLabels": st.dictionaries(texts, texts, max_size=2),
        })


def annotations() -> st.SearchStrategy[list[dict[str, str]]]:
    plain = st.fixed_dictionaries({"name": identifiers.filter(
        lambda n: n not in ("created", "homepage", "documentation")), "value": texts})
    special = st.sampled_from([{"name": "created", "value": "2016-01-02T03:04:05Z"},
                               {"name": "homepage", "value": "https://example.com/x"},
                               {"name": "documentation", "value": "http://docs.example"}])
    return st.lists(st.one_of(plain, special), max_size=4, unique_by=lambda a: a["name"])


image_manifests = st.fixed_dictionaries(
    {"acKind": st.just("ImageManifest"),
     "acVersion": st.sampled_from(["0.8.11", "0.8.0", "1.0.0-rc.1+build.5"]),
     "name": identifiers},
    optional={
        "labels": labels(),
        "app": apps(),
        "annotations": annotations(),
        "dependencies": st.lists(st.fixed_dictionaries(
            {"imageName": identifiers},
            optional={"imageID": image_ids, "labels": labels(), "size": st.integers(1, 2**40)}),
            max_size=3),
        "pathWhitelist": st.lists(paths, max_size=3),
    })

volumes = st.one_of(
    st.fixed_dictionaries({"name": ac_names, "kind": st.just("host"), "source": paths},
                          optional={"readOnly": st.booleans(), "recursive": st.booleans()}),
    st.fixed_dictionaries({"name": ac_names, "kind": st.just("empty")},
                          optional={"mode": st.sampled_from(["0755", "0700"]),
                                    "uid": st.integers(0, 65535), "gid": st.integers(0, 65535)}),
)

pod_manifests = st.fixed_dictionaries(
    {"acKind": st.just("PodManifest"), "acVersion": st.just("0.8.11"),
     "apps": unique_by_name(st.fixed_dictionaries(
         {"name": ac_names, "image": st.fixed_dictionaries(
             {"id": image_ids}, optional={"name": identifiers, "labels": labels()})},
         optional={"app": apps(), "readOnlyRootFS": st.booleans(),
                   "mounts": st.lists(st.fixed_dictionaries({"volume": ac_names,
                                                             "path": paths}), max_size=2),
                   "annotations": annotations()}), max_size=3),
     "volumes": unique_by_name(volumes, max_size=3)},
    optional={"isolators": st.lists(isolator_values(), max_size=2,
                                    unique_by=lambda i: i["name"]),
              "annotations": annotations(),
              "ports": unique_by_name(st.fixed_dictionaries(
                  {"name": ac_names, "hostPort": st.integers(0, 65535)},
                  optional={"hostIP": st.sampled_from(["127.0.0.1", "::1", "10.0.0.7"])}))})

# No "explain" phase: it imports libcst and costs minutes on a failure.
SETTINGS = settings(max_examples=100, deadline=None,
                    phases=[Phase.explicit, Phase.reuse, Phase.generate, Phase.shrink],
                    suppress_health_check=[HealthCheck.too_slow])


@SETTINGS
@given(image_manifests)
def test_image_manifest_round_trip(data: dict[str, Any]) -> None:
    manifest = ImageManifest.from_dict(data)
    for pretty in (False, True):
        again = ImageManifest.from_json(manifest.to_json(pretty=pretty))
        assert again == manifest
        assert again.to_json() == manifest.to_json()


@SETTINGS
@given(pod_manifests)
def test_pod_manifest_round_trip(data: dict[str, Any]) -> None:
    pod = PodManifest.from_dict(data)
    again = PodManifest.from_json(pod.to_json())
    assert again == pod
    assert again.to_json(pretty=True) == pod.to_json(pretty=True)
