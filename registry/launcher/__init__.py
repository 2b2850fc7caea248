"""The launcher: pods and their states, rendering, stage1 flavours (systemd, builtin) and cgroups."""
