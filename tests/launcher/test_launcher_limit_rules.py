"""The one mapping from an app's resource isolators to cgroup files and systemd properties."""

from __future__ import annotations

import pytest

from registry.launcher import limits
from registry.launcher.errors import LauncherError
from registry.launcher.limits import Limits


def _app(name: str, memory: str | None = None, cpu: str | None = None) -> dict:
    isolators = [{"name": "os/linux/no-new-privileges", "value": True}]
    if memory:
        isolators.append({"name": "resource/memory", "value": {"limit": memory}})
    if cpu:
        isolators.append({"name": "resource/cpu", "value": {"request": "100m", "limit": cpu}})
    return {"name": name, "app": {"exec": ["/x"], "isolators": isolators}}


def test_isolators_become_the_same_limits_everywhere() -> None:
    app = limits.of_app(_app("a", "64Mi", "250m"))
    assert app == Limits(64 * 2**20, 250)
    assert limits.v2_files(app) == [("memory.max", "67108864"), ("memory.swap.max", "0"),
                                    ("memory.oom.group", "1"), ("cpu.max", "25000 100000")]
    assert limits.v1_files(app) == [("memory", "memory.limit_in_bytes", "67108864"),
                                    ("memory", "memory.memsw.limit_in_bytes", "67108864"),
                                    ("cpu", "cpu.cfs_period_us", "100000"),
                                    ("cpu", "cpu.cfs_quota_us", "25000")]
    assert limits.systemd_properties(app) == ["MemoryMax=67108864", "MemorySwapMax=0",
                                              "CPUQuota=25%"]
    assert limits.systemd_properties(Limits()) == [] and not Limits()


def test_cpu_quotas_below_the_kernels_minimum_lengthen_the_period() -> None:
    assert limits.cpu_quota(2500) == (250_000, 100_000)  # 2.5 CPUs
    assert limits.cpu_quota(10) == (1_000, 100_000)
    assert limits.cpu_quota(5) == (1_000, 200_000)  # still 1/200 of a CPU
    assert limits.cpu_quota(1) == (1_000, 1_000_000)
    assert limits.systemd_properties(Limits(cpu_millis=5)) == ["CPUQuota=0.5%",
                                                               "CPUQuotaPeriodSec=200ms"]
    assert limits.systemd_properties(Limits(cpu_millis=333)) == ["CPUQuota=33.3%"]


def test_the_pod_ceiling_never_binds_before_an_app() -> None:
    both = [Limits(64 * 2**20, 250), Limits(32 * 2**20, 500)]
    assert limits.pod_limits(both) == Limits(96 * 2**20 + limits.STAGE1_MEMORY_ALLOWANCE, 750)
    assert limits.pod_limits([Limits(64 * 2**20, None), Limits(None, 500)]) == Limits()


def test_plan_refuses_or_with_the_insecure_option_drops_and_warns() -> None:
    apps = [_app("web", "64M", "250m"), _app("side")]

    def no_memory(resource: str) -> str | None:
        return "the controller is read-only here" if resource == "memory" else None

    with pytest.raises(LauncherError) as refused:
        limits.plan(apps, [], print, problem=no_memory)
    assert str(refused.value) == (
        "--memory=64M (app web) cannot be enforced: the controller is read-only here; run the "
        "pod where cgroups are delegated, drop --memory, or pass --insecure-options=limits to "
        "run it unlimited")
    warnings: list[str] = []
    kept = limits.plan(apps, ["limits"], warnings.append, problem=no_memory)
    assert kept == {"web": Limits(None, 250), "side": Limits()}
    assert warnings == ["--memory=64M (app web) is NOT enforced: the controller is read-only "
                        "here (--insecure-options=limits)"]
    assert limits.plan(apps, [], print, problem=lambda _r: None)["web"] == Limits(64_000_000, 250)
