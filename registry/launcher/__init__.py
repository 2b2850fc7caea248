"""The launcher: pods and their states, rendering, stage1 flavours (systemd, builtin), cgroups.

Modules, in the order a run goes through them:
- `options`      rkt's run flags parsed into `PodOptions` / `AppOptions` (shared by every front end)
- `prepare`      stage0: resolve/fetch images, write the PodManifest, render each app's rootfs
- `pods`         pod directories and their states (rename + flock), timestamps, exit codes
- `run`          take a prepared pod into `run/`, choose the stage1 flavour
- `stage1_builtin` namespaces via ctypes (`linux`), `podinit` (the pod's PID 1 hides the
                 host), `sandbox` (mounts, masked paths, pivot_root, identity, confinement),
                 `capabilities`, `seccomp` (libseccomp filters, cached BPF), `terminal`
                 (--interactive ptys), `cgroups` (v2 or v1), `portfwd` (host -> pod TCP),
                 `logs` (app output with per-chunk times)
- `stage1_systemd` each pod a machine where systemd is PID 1 (`machine`: its root and units,
                 `unitfile`: values systemd passes on unchanged, `journal`: its apps' output);
                 a one-app systemd-nspawn child otherwise
- `manage`       list/status/stop/rm/gc/logs/enter helpers; `enter` runs `pyrkt enter`
- `oneshot`      `run_in_rootfs`, one command in a bare rootfs (for `acbuild run`)

Contract for other parts: `images_in_use(store_dir) -> set[str]` (the client's `image gc`),
`registry.launcher.oneshot.run_in_rootfs(rootfs, argv, ...) -> int` (the builder).
"""

from __future__ import annotations

from registry.lazy import lazy_exports

TYPE_CHECKING = False  # typing stays out of every start (see registry.launcher.pods)

# Imported on first use: every `from registry.launcher.X import ...` runs this file first, and
# `pyrkt run --help`, `acbuild run` or the client's `image gc` should not pay for `manage`
# (pods, cgroups, datetime) unless they use it.
_EXPORTS: dict[str, str] = {"LauncherError": "errors", "PodNotFound": "errors",
                            "images_in_use": "manage"}

__all__ = ["LauncherError", "PodNotFound", "images_in_use"]


__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS, globals())


if TYPE_CHECKING:
    from .errors import LauncherError, PodNotFound
    from .manage import images_in_use
