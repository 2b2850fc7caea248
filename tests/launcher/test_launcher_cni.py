"""Pod networks on Debian's CNI plugins: addresses, routes, NAT, ports, DNS files, teardown.

Every test runs in a network namespace of its own (the `test_netns` fixture of conftest.py):
the pods' veths, routes and iptables rules are made there, and every address a test talks to
lives there (or in a second namespace the test makes itself to play "another host").
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from launcher_helpers import needs_root, status_of, wait_for_file
from netns_helpers import ip, iptables_rules

pytestmark = [pytest.mark.root, pytest.mark.e2e]

SERVE_PORT = 8080


@pytest.fixture(autouse=True)
def _root() -> None:
    needs_root()


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class Server:
    """A TCP server in the test's namespace that answers `hello` and remembers its peers."""

    def __init__(self, address: str = "0.0.0.0") -> None:
        self.sock = socket.socket()
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        # IP_FREEBIND: listen on an address that appears only when the pod's veth does
        self.sock.setsockopt(socket.IPPROTO_IP, 15, 1)
        self.sock.bind((address, 0))
        self.sock.listen(16)
        self.port = self.sock.getsockname()[1]
        self.peers: list[str] = []
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self) -> None:
        while True:
            try:
                conn, peer = self.sock.accept()
            except OSError:
                return
            self.peers.append(peer[0])
            conn.sendall(b"hello")
            conn.close()

    def close(self) -> None:
        self.sock.close()


def _read(address: str, port: int, timeout: float = 20) -> bytes:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with socket.create_connection((address, port), timeout=2) as conn:
                data = conn.recv(100)
                if data:
                    return data
        except OSError:
            pass
        time.sleep(0.1)
    return b""


def _pod_ip(pyrkt, uuid: str, network: str = "default") -> str:
    """The pod's address from `pyrkt status` (networks=default:ip4=172.16.28.N)."""
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        line = status_of(pyrkt, uuid).get("networks", "")
        for entry in line.split(","):
            name, _, address = entry.partition(":ip4=")
            if name == network and address:
                return address
        time.sleep(0.1)
    raise AssertionError(f"pod {uuid} has no address on {network}: {status_of(pyrkt, uuid)}")


def _wait_app_exit(pyrkt, uuid: str, app: str = "tool", timeout: float = 30) -> str:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        code = status_of(pyrkt, uuid).get(f"app-{app}")
        if code is not None:
            return code
        time.sleep(0.1)
    raise AssertionError(f"app {app} of pod {uuid} did not exit")


def _veths() -> list[str]:
    """The pods' host-side veths (the plugins name them veth<random>)."""
    names = [line.split(":")[1].strip().split("@")[0] for line in ip("-o", "link").splitlines()]
    return [name for name in names if name.startswith("veth")]


def _leases(store: Path) -> list[Path]:
    """host-local's lease files (one per address in use) under the store."""
    root = store / "networks"
    if not root.exists():
        return []
    return [p for p in root.glob("*/*") if p.name not in ("lock",)
            and not p.name.startswith("last_reserved_ip")]


def _assert_nothing_left(store: Path, uuids: list[str]) -> None:
    assert _veths() == [], ip("-o", "link")
    assert _leases(store) == []
    routes = [r for r in ip("route").splitlines() if "172.16." in r]
    assert routes == [], routes
    rules = iptables_rules()
    # portmap keeps its shared chains (CNI-HOSTPORT-*) for every user of CNI on the host; what
    # is per pod (a chain and rules naming the pod's ID) must be gone.
    per_pod = [line for line in rules.splitlines()
               if any(u in line for u in uuids) or line.startswith((":CNI-DN-", "-A CNI-DN-"))
               or (line.startswith(":CNI-") and not line.startswith(":CNI-HOSTPORT-"))]
    assert per_pod == [], per_pod
    mounts = Path("/proc/self/mountinfo").read_text()
    assert str(store) not in mounts


@pytest.fixture
def served(tool_image, start_pyrkt, tmp_path) -> Iterator:
    """Start a pod serving `text` on SERVE_PORT; yields a starter returning the pod's UUID."""
    image = tool_image(app={"ports": [{"name": "http", "protocol": "tcp", "port": SERVE_PORT}]})
    count = [0]

    def start(text: str, *flags: str) -> str:
        count[0] += 1
        uuid_file = tmp_path / f"uuid-{count[0]}"
        start_pyrkt("run", "--insecure-options=image", f"--uuid-file-save={uuid_file}", *flags,
                    str(image), "--", "serve", str(SERVE_PORT), text)
        return wait_for_file(uuid_file)

    yield start


def test_pod_reaches_a_server_on_its_gateway(tool_image, pyrkt) -> None:
    server = Server("172.16.28.1")  # the host side of every default-network veth
    try:
        result = pyrkt("run", "--insecure-options=image", str(tool_image()), "--",
                       "client", f"172.16.28.1:{server.port}")
        assert result.returncode == 0, result.stdout + result.stderr
        assert "client got: hello" in result.stdout
        uuid = json.loads(pyrkt("list", "--format", "json", check=True).stdout)[0]["name"]
        address = _pod_ip(pyrkt, uuid)
        assert address.startswith("172.16.28.") and server.peers == [address]
    finally:
        server.close()


def test_the_namespace_reaches_the_pod_and_list_shows_its_address(served, pyrkt) -> None:
    uuid = served("from-the-pod")
    address = _pod_ip(pyrkt, uuid)
    assert _read(address, SERVE_PORT) == b"from-the-pod"
    status = status_of(pyrkt, uuid)
    assert status["networks"] == f"default:ip4={address}"
    table = pyrkt("list", "--no-legend", check=True).stdout
    assert f"default:ip4={address}" in table
    listed = json.loads(pyrkt("list", "--format", "json", check=True).stdout)[0]
    network = listed["networks"][0]
    assert (network["netName"], network["ifName"], network["ip"], network["hostIP"]) == \
        ("default", "eth0", address, "172.16.28.1")
    assert network["mask"] == "255.255.255.0"
    status_json = json.loads(pyrkt("status", "--format", "json", uuid, check=True).stdout)
    assert [(n["netName"], n["ip"]) for n in status_json["networks"]] == [("default", address)]
    pyrkt("stop", uuid, check=True)


def test_two_pods_reach_each_other(served, tool_image, pyrkt) -> None:
    uuid = served("pod-to-pod")
    address = _pod_ip(pyrkt, uuid)
    client = pyrkt("run", "--insecure-options=image", str(tool_image("example.com/client")), "--",
                   "client", f"{address}:{SERVE_PORT}")
    assert client.returncode == 0 and "client got: pod-to-pod" in client.stdout, client.stdout
    pyrkt("stop", uuid, check=True)


def test_port_is_dnated_from_loopback_its_veth_and_another_host(served, pyrkt, tmp_path) -> None:
    # "Another host": a second namespace behind a veth pair, 10.99.0.2 <-> 10.99.0.1 (ours).
    other = subprocess.Popen(["unshare", "--net", "sleep", "300"])
    try:
        other_ns = f"/proc/{other.pid}/ns/net"
        deadline = time.monotonic() + 10
        while os.readlink(other_ns) == os.readlink("/proc/thread-self/ns/net"):
            assert time.monotonic() < deadline
            time.sleep(0.02)
        ip("link", "add", "uplink", "type", "veth", "peer", "name", "uplink-peer")
        ip("link", "set", "uplink-peer", "netns", str(other.pid))
        ip("addr", "add", "10.99.0.1/24", "dev", "uplink")
        ip("link", "set", "uplink", "up")
        inside = ["nsenter", f"--net={other_ns}"]
        for command in (["ip", "link", "set", "lo", "up"],
                        ["ip", "addr", "add", "10.99.0.2/24", "dev", "uplink-peer"],
                        ["ip", "link", "set", "uplink-peer", "up"]):
            subprocess.run(inside + command, check=True)

        host_port = _free_port()
        uuid = served("through-portmap", f"--port=http:{host_port}")
        address = _pod_ip(pyrkt, uuid)
        assert _read("127.0.0.1", host_port) == b"through-portmap"
        assert _read("10.99.0.1", host_port) == b"through-portmap"
        probe = ("import socket,sys; c=socket.create_connection(('10.99.0.1', int(sys.argv[1])),"
                 " timeout=5); print(c.recv(100).decode())")
        remote = subprocess.run([*inside, "python3", "-c", probe, str(host_port)],
                                capture_output=True, text=True, timeout=30)
        assert remote.stdout.strip() == "through-portmap", remote.stderr
        rules = iptables_rules()
        assert f"--to-destination {address}:{SERVE_PORT}" in rules  # DNAT, not a proxy
        with socket.socket() as sock:  # nothing of pyrkt listens on the host port
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            sock.bind(("0.0.0.0", host_port))
        pyrkt("stop", uuid, check=True)
        status_of(pyrkt, uuid, "--wait")
        assert f"{address}:{SERVE_PORT}" not in iptables_rules()
        assert _read("127.0.0.1", host_port, timeout=1) == b""
    finally:
        other.kill()
        other.wait()


def test_port_with_net_none_uses_the_userspace_forwarder(served, pyrkt) -> None:
    host_port = _free_port()
    uuid = served("through-the-forwarder", "--net=none", f"--port=http:127.0.0.1:{host_port}")
    assert _read("127.0.0.1", host_port) == b"through-the-forwarder"
    assert status_of(pyrkt, uuid).get("networks") is None
    assert "DNAT" not in iptables_rules()
    pyrkt("stop", uuid, check=True)


def test_the_cli_says_how_a_port_is_forwarded(tool_image, pyrkt) -> None:
    image = tool_image(app={"ports": [{"name": "http", "protocol": "tcp", "port": SERVE_PORT}]})
    port = _free_port()
    nat = pyrkt("run", "--insecure-options=image", f"--port=http:{port}", str(image), "--",
                "exit", "0")
    assert nat.returncode == 0, nat.stderr
    assert f"port http: 0.0.0.0:{port} -> 172.16.28." in nat.stderr
    assert "(DNAT by the CNI portmap plugin on network default)" in nat.stderr
    user = pyrkt("run", "--insecure-options=image", "--net=none", f"--port=http:{port}",
                 str(image), "--", "exit", "0")
    assert "(userspace forwarder in pyrkt run: --net=none: the pod has only loopback)" \
        in user.stderr
    host = pyrkt("run", "--insecure-options=image", "--net=host", f"--port=http:{port}",
                 str(image), "--", "exit", "0")
    assert host.returncode == 254
    assert host.stderr.strip().splitlines()[-1].startswith("pyrkt: --port has no effect with")


def test_dns_and_hosts_files_in_every_app(tool_image, pyrkt) -> None:
    first, second = tool_image("example.com/first"), tool_image("example.com/second")
    result = pyrkt("run", "--insecure-options=image", "--hostname=web.example.org",
                   "--dns=192.0.2.53", "--dns=2001:db8::53", "--dns-search=example.com",
                   "--dns-search=example.net", "--dns-opt=rotate", "--dns-opt=ndots:2",
                   "--dns-domain=example.org", "--hosts-entry=198.51.100.7=db,198.51.100.8=cache",
                   "--hosts-entry=198.51.100.7=primary",
                   str(first), "--", "cat", "/etc/resolv.conf", "cat", "/etc/hosts", "---",
                   str(second), "--", "cat", "/etc/hosts")
    assert result.returncode == 0, result.stdout + result.stderr
    assert ("cat /etc/resolv.conf: # Generated by pyrkt run\n\nsearch example.com example.net\n"
            "nameserver 192.0.2.53\nnameserver 2001:db8::53\noptions rotate ndots:2\n"
            "domain example.org\n") in result.stdout
    uuid = json.loads(pyrkt("list", "--format", "json", check=True).stdout)[0]["name"]
    hosts = result.stdout.split("cat /etc/hosts: ")[1]
    assert "127.0.0.1 localhost" in hosts
    assert f"{status_of(pyrkt, uuid)['networks'].split('ip4=')[1]} web.example.org web\n" in hosts
    assert "198.51.100.7 db primary\n198.51.100.8 cache\n" in hosts
    assert result.stdout.count("web.example.org web") == 2  # both apps have it


def test_dns_host_and_hosts_entry_host_bind_the_hosts_files(tool_image, pyrkt) -> None:
    result = pyrkt("run", "--insecure-options=image", "--net=none", "--dns=host",
                   "--hosts-entry=host", str(tool_image()), "--", "cat", "/etc/resolv.conf",
                   "cat", "/etc/hosts", "write", "/etc/hosts", "x")
    assert result.returncode == 0, result.stderr
    for path in ("/etc/resolv.conf", "/etc/hosts"):
        wanted = Path(path).read_text()[:4095] if Path(path).exists() else ""
        assert f"cat {path}: {wanted}" in result.stdout
    assert "write /etc/hosts: Read-only file system" in result.stdout
    # without flags: no resolv.conf is invented, /etc/hosts names the pod
    plain = pyrkt("run", "--insecure-options=image", "--net=none", "--hostname=solo",
                  str(tool_image()), "--", "exists", "/etc/resolv.conf", "cat", "/etc/hosts")
    assert "exists /etc/resolv.conf: no" in plain.stdout
    assert "127.0.0.1 solo\n" in plain.stdout


def test_bad_network_flags_are_one_line_errors(tool_image, pyrkt, store) -> None:
    image = str(tool_image())
    for flags, message in (
        (["--net=nosuch"], 'pyrkt: --net: no network named "nosuch" (known: default, '
                           "default-restricted"),
        (["--net=host,default"], 'pyrkt: --net=host,default: "host" and "none" cannot be'),
        (["--net=default:IP=300.1.1.1"], "pyrkt: --net=default:IP=300.1.1.1: IP=300.1.1.1 is "
                                         "not an IP address"),
        (["--dns=resolver.example"], 'pyrkt: --dns "resolver.example": not an IP address'),
        (["--hosts-entry=db"], 'pyrkt: --hosts-entry "db": expected IP=HOST'),
    ):
        result = pyrkt("run", "--insecure-options=image", *flags, image)
        assert result.returncode == 254, (flags, result.stderr)
        assert result.stderr.strip().splitlines()[-1].startswith(message), result.stderr
        assert "Traceback" not in result.stderr
    assert not list((store / "pods").glob("*/*")) if (store / "pods").exists() else True


def _bridge_config(tmp_path: Path) -> list[str]:
    net_d = tmp_path / "conf" / "net.d"
    net_d.mkdir(parents=True)
    (net_d / "10-lan.conf").write_text(json.dumps({
        "cniVersion": "1.0.0", "name": "lan", "type": "bridge", "bridge": "pyrkt-lan0",
        "isGateway": True, "ipMasq": True,
        "ipam": {"type": "host-local", "subnet": "10.77.0.0/24",
                 "routes": [{"dst": "0.0.0.0/0"}]},
        "dns": {"nameservers": ["10.77.0.1"], "search": ["lan.example"]}}))
    return ["--local-config", str(tmp_path / "conf")]


def test_named_bridge_network_with_a_static_address(served, pyrkt, tmp_path) -> None:
    config = _bridge_config(tmp_path)
    host_port = _free_port()
    uuid = served("on-the-bridge", *config, "--net=lan:IP=10.77.0.42", f"--port=http:{host_port}")
    assert _pod_ip(pyrkt, uuid, "lan") == "10.77.0.42"
    assert status_of(pyrkt, uuid)["networks"] == "lan:ip4=10.77.0.42"
    assert _read("10.77.0.42", SERVE_PORT) == b"on-the-bridge"
    assert _read("127.0.0.1", host_port) == b"on-the-bridge"  # portmap on a bridge network
    assert "pyrkt-lan0" in ip("-o", "link")
    # several networks: eth0 on default, eth1 on lan
    both = served("on-both", *config, "--net=default,lan")
    _pod_ip(pyrkt, both, "lan")  # the UUID is saved before the networks are: wait for the last
    listed = {p["name"]: p for p in json.loads(pyrkt("list", "--format", "json").stdout)}
    names = [(n["netName"], n["ifName"]) for n in listed[both]["networks"]]
    assert names == [("default", "eth0"), ("lan", "eth1")]
    lan_ip = _pod_ip(pyrkt, both, "lan")
    assert lan_ip.startswith("10.77.0.") and lan_ip != "10.77.0.42"
    assert _read(lan_ip, SERVE_PORT) == b"on-both"
    assert _read(_pod_ip(pyrkt, both, "default"), SERVE_PORT) == b"on-both"
    pyrkt("stop", uuid, both, check=True)


def test_the_networks_dns_answer_makes_resolv_conf_unless_dns_none(tool_image, pyrkt,
                                                                   tmp_path) -> None:
    config = _bridge_config(tmp_path)  # its plugin answers the configuration's "dns"
    image = str(tool_image())
    answered = pyrkt("run", "--insecure-options=image", *config, "--net=lan", image, "--",
                     "cat", "/etc/resolv.conf")
    assert answered.returncode == 0, answered.stderr
    assert "search lan.example\nnameserver 10.77.0.1\n" in answered.stdout
    ignored = pyrkt("run", "--insecure-options=image", *config, "--net=lan", "--dns=none", image,
                    "--", "exists", "/etc/resolv.conf")
    assert "exists /etc/resolv.conf: no" in ignored.stdout
    flags_win = pyrkt("run", "--insecure-options=image", *config, "--net=lan",
                      "--dns=192.0.2.9", image, "--", "cat", "/etc/resolv.conf")
    assert "nameserver 192.0.2.9\n" in flags_win.stdout and "10.77.0.1" not in flags_win.stdout


def test_default_restricted_reaches_only_the_host_side(tool_image, pyrkt) -> None:
    # an address of the host beyond the pod's host side (a veth pair: no dummy module needed)
    ip("link", "add", "outside", "type", "veth", "peer", "name", "outside-peer")
    ip("addr", "add", "10.98.0.1/24", "dev", "outside")
    ip("link", "set", "outside", "up")
    ip("link", "set", "outside-peer", "up")
    server = Server()
    try:
        image = str(tool_image())
        restricted = pyrkt("run", "--insecure-options=image", "--net=default-restricted", image,
                           "--", "client", f"172.16.29.1:{server.port}",
                           "client", f"10.98.0.1:{server.port}")
        assert "client got: hello" in restricted.stdout  # its own host side
        assert f"client: cannot connect to {server.port}" in restricted.stdout  # nothing beyond
        assert restricted.returncode == 4
        uuid = json.loads(pyrkt("list", "--format", "json", check=True).stdout)[0]["name"]
        assert status_of(pyrkt, uuid)["networks"].startswith("default-restricted:ip4=172.16.29.")
        default = pyrkt("run", "--insecure-options=image", image, "--", "client",
                        f"10.98.0.1:{server.port}")
        assert default.returncode == 0 and "client got: hello" in default.stdout
        assert server.peers[-1].startswith("172.16.28.")  # the default network's pod
    finally:
        server.close()


def test_teardown_after_pyrkt_run_is_killed(served, pyrkt, store, start_pyrkt, tool_image,
                                            tmp_path) -> None:
    uuid_file = tmp_path / "uuid"
    runner = start_pyrkt("run", "--insecure-options=image", f"--uuid-file-save={uuid_file}",
                         f"--port=http:{_free_port()}",
                         str(tool_image(app={"ports": [{"name": "http", "protocol": "tcp",
                                                        "port": SERVE_PORT}]})),
                         "--", "sleep", "2")
    uuid = wait_for_file(uuid_file)
    _pod_ip(pyrkt, uuid)
    runner.send_signal(signal.SIGKILL)  # nobody left to DEL when the pod ends
    runner.wait()
    assert status_of(pyrkt, uuid, "--wait")["state"] == "exited"
    assert len(_veths()) == 1 and len(_leases(store)) == 1 and uuid in iptables_rules()
    gc = pyrkt("gc", "--grace-period=0s", check=True)
    assert f"Garbage collecting pod {uuid}" in gc.stdout
    _assert_nothing_left(store, [uuid])

    # and `pyrkt stop` of a pod whose `pyrkt run` died releases its networks at once
    killed = served("x")
    _pod_ip(pyrkt, killed)
    supervisor = int(subprocess.run(["pgrep", "-f", f"uuid-file-save={tmp_path}/uuid-1"],
                                    capture_output=True, text=True).stdout.split()[0])
    os.kill(supervisor, signal.SIGKILL)
    pyrkt("stop", killed, check=True)
    assert _veths() == [] and _leases(store) == []
    assert killed not in iptables_rules()


def test_nothing_left_after_100_pods_are_collected(tool_image, store, pyrkt) -> None:
    """100 pods run from this process (the launcher's API, as `pyrkt run` calls it), half with a
    port forwarded by portmap, then `pyrkt gc`: no veth, lease, route, rule or mount remains."""
    from registry.launcher.options import AppOptions, PodOptions, PortMap
    from registry.launcher.prepare import prepare_pod
    from registry.launcher.run import run_prepared

    image = tool_image(app={"ports": [{"name": "http", "protocol": "tcp", "port": SERVE_PORT}]})
    image_id = pyrkt("fetch", "--insecure-options=image", str(image), check=True).stdout.split()[-1]
    uuids, addresses = [], set()
    port = _free_port()
    for index in range(100):
        options = PodOptions(apps=[AppOptions(image=image_id, args=["exit", "0"])],
                             ports=[PortMap("http", port)] if index % 2 else [])
        pod = prepare_pod(store, options)
        _, code = run_prepared(store, pod.uuid, echo=False)
        assert code == 0
        uuids.append(pod.uuid)
        addresses.add(json.loads((Path(pod.refresh().path) / "net" / "net-info.json").read_text())
                      ["networks"][0]["result"]["ips"][0]["address"])
    assert len(uuids) == 100 and addresses  # every pod had an address
    gc = pyrkt("gc", "--grace-period=0s", timeout=300, check=True)
    assert gc.stdout.count("Garbage collecting pod") == 100
    _assert_nothing_left(store, uuids)
