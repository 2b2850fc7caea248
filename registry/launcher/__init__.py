"""The launcher: pods and their states, rendering, stage1 flavours (systemd, builtin), cgroups.

Public entry points (the CLI and other parts call these):
- `prepare_pod(store_dir, options)`, `run_pod(...)`, `run_prepared(store_dir, uuid)`
- `registry.launcher.manage`: list/status/stop/rm/gc/logs/enter helpers
- `images_in_use(store_dir) -> set[str]` for the client's `pyrkt image gc`
"""

from __future__ import annotations

from .errors import LauncherError, PodNotFound
from .manage import images_in_use

__all__ = ["LauncherError", "PodNotFound", "images_in_use"]
