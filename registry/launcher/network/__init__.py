"""Pod networking on the CNI plugins, with rkt's networks and meanings.

- `config` the networks: rkt's `default` and `default-restricted`, and CNI files in `net.d`
- `plan`   prepare time: `--net` resolved to networks, each `--port` given a way in
- `cni`    plugin invocation per the CNI specification (ADD/DEL chains, results)
- `pod`    run time: the pod's persistent network namespace, ADD on start, DEL on teardown,
           what `list`/`status` show
- `dns`    `/etc/resolv.conf` and `/etc/hosts` for every app of the pod
"""
