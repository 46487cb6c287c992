"""kite net-*: named networks (VirtualBox's host-only and internal networks, a host bridge),
each test inside network namespaces it creates and removes, never on this machine's own
interfaces. The referees are the kernel (ip addr), a real DHCP client (busybox udhcpc) and
ping between namespaces. Needs root, iproute2, dnsmasq and busybox (scripts/setup)."""

import json
import os
import re
import shutil
import subprocess
import uuid

import pytest

from conftest import BUILDS, run

pytestmark = pytest.mark.skipif(
    os.geteuid() != 0 or not shutil.which("ip") or not shutil.which("dnsmasq")
    or not shutil.which("busybox"),
    reason="needs root, iproute2, dnsmasq and busybox (scripts/setup installs them)")

# Each test runs on one build (not both, as `kite` would): the ones that parse input and
# dnsmasq's lease file on the ASan+UBSan build, the others on the release build.
@pytest.fixture
def release():
    return BUILDS["release"]


@pytest.fixture
def asan():
    return BUILDS["asan"]


UDHCPC_SCRIPT = """#!/bin/sh
[ "$1" = bound ] && ip addr add "$ip/$mask" dev "$interface" && echo "BOUND $ip" &&
  for r in $router; do ip route add default via "$r" && echo "ROUTER $r"; break; done
exit 0
"""


class Netns:
    """A network namespace for the test: the 'host' kite's networks live in."""

    def __init__(self):
        self.name = "kt-" + uuid.uuid4().hex[:10]
        subprocess.run(["ip", "netns", "add", self.name], check=True)
        self.sh("ip link set lo up")

    def sh(self, cmd, check=True, timeout=60):
        return subprocess.run(["ip", "netns", "exec", self.name, "sh", "-c", cmd],
                              capture_output=True, text=True, check=check, timeout=timeout)

    def delete(self):
        subprocess.run(["ip", "netns", "del", self.name], capture_output=True)


@pytest.fixture
def host(tmp_path):
    """A namespace standing for the host, and a kite runner in it with its own state dir."""
    ns = Netns()
    state = tmp_path / "state"

    def kite_in(kite, *args, check_rc=None):
        env = dict(os.environ, KITE_STATE_DIR=str(state))
        r = run(["ip", "netns", "exec", ns.name, kite, *args], env=env)
        if check_rc is not None:
            assert r.returncode == check_rc, f"kite {' '.join(args)}: {r.stdout}{r.stderr}"
        return r

    ns.kite = kite_in
    ns.state = state
    try:
        yield ns
    finally:
        # Whatever a test left running: its dnsmasq processes (their pid files), then the
        # namespace with its bridges.
        for pidfile in state.glob("run/networks/*/dnsmasq.pid"):
            try:
                os.kill(int(pidfile.read_text()), 9)
            except (ValueError, OSError):
                pass
        ns.delete()


def add_client(host, bridge, mac):
    """A second namespace (a 'guest') wired to `bridge` in the host namespace by a veth."""
    guest = Netns()
    veth = "v" + guest.name[3:12]
    host.sh(f"ip link add {veth} type veth peer name eth0 netns {guest.name} && "
            f"ip link set {veth} master {bridge} up")
    guest.sh(f"ip link set eth0 address {mac} && ip link set eth0 up")
    return guest


def dhcp(guest, tmp_path, hostname):
    script = tmp_path / "udhcpc.sh"
    script.write_text(UDHCPC_SCRIPT)
    script.chmod(0o755)
    r = guest.sh(f"busybox udhcpc -i eth0 -n -q -f -t 10 -T 1 -x hostname:{hostname} "
                 f"-s {script}", check=False, timeout=60)
    m = re.search(r"^BOUND (\S+)$", r.stdout, re.M)
    assert m, r.stdout + r.stderr
    guest.router = re.findall(r"^ROUTER (\S+)$", r.stdout, re.M)
    return m.group(1)


# busybox-static's wget crashes here; Python fetches the page instead.
def fetch(ns, url, timeout):
    code = (f"import urllib.request,sys; sys.stdout.write(urllib.request.urlopen("
            f"{url!r}, timeout={timeout}).read().decode())")
    return ns.sh(f"/usr/bin/python3 -c \"{code}\"", check=False, timeout=timeout + 30)



def dnsmasq_running(host):
    return host.state.glob("run/networks/*/dnsmasq.pid") and any(
        os.path.exists(f"/proc/{p.read_text().strip()}")
        for p in host.state.glob("run/networks/*/dnsmasq.pid"))


def test_hostonly_hands_out_virtualbox_addresses(asan, host, tmp_path):
    kite = asan
    host.kite(kite, "net-define", "--name", "vboxnet0", "--mode", "hostonly", check_rc=0)
    r = host.kite(kite, "net-start", "vboxnet0", check_rc=0)
    assert r.stdout == "Network vboxnet0 started\n\n"
    info = host.kite(kite, "net-info", "vboxnet0", check_rc=0).stdout
    bridge = re.search(r"^Bridge: +(\S+)$", info, re.M).group(1)
    assert re.search(r"^Active: +yes$", info, re.M), info
    addr = host.sh(f"ip -4 -o addr show dev {bridge}").stdout
    assert "inet 192.168.56.1/24" in addr, addr

    g1 = add_client(host, bridge, "52:54:00:ab:cd:01")
    g2 = add_client(host, bridge, "52:54:00:ab:cd:02")
    try:
        assert dhcp(g1, tmp_path, "guest1") == "192.168.56.101"
        assert dhcp(g2, tmp_path, "guest2") == "192.168.56.102"
        # host <-> guest and guest <-> guest, nothing else (no route out).
        g1.sh("busybox ping -c 1 -W 5 192.168.56.1")
        g1.sh("busybox ping -c 1 -W 5 192.168.56.102")
        host.sh("busybox ping -c 1 -W 5 192.168.56.101")
        leases = host.kite(kite, "net-dhcp-leases", "vboxnet0", check_rc=0).stdout
        rows = [l.split() for l in leases.splitlines()[2:] if l.strip()]
        got = sorted((r[2], r[4], r[5], r[6]) for r in rows)
        assert got == [("52:54:00:ab:cd:01", "192.168.56.101/24", "guest1",
                        "01:52:54:00:ab:cd:01"),
                       ("52:54:00:ab:cd:02", "192.168.56.102/24", "guest2",
                        "01:52:54:00:ab:cd:02")], leases
    finally:
        g1.delete()
        g2.delete()

    lst = host.kite(kite, "net-list", check_rc=0).stdout.splitlines()
    assert lst[2].split() == ["vboxnet0", "active", "no", "yes"], lst
    r = host.kite(kite, "net-destroy", "vboxnet0", check_rc=0)
    assert r.stdout == "Network vboxnet0 destroyed\n\n"
    assert host.sh(f"ip link show {bridge}", check=False).returncode != 0
    assert not dnsmasq_running(host)
    assert host.kite(kite, "net-list", check_rc=0).stdout.splitlines()[2:] == []
    lst = host.kite(kite, "net-list", "--all", check_rc=0).stdout.splitlines()
    assert lst[2].split() == ["vboxnet0", "inactive", "no", "yes"], lst
    r = host.kite(kite, "net-destroy", "vboxnet0", check_rc=1)
    assert r.stderr == "kite: error: network vboxnet0 is not active\n"
    host.kite(kite, "net-undefine", "vboxnet0", check_rc=0)
    assert host.kite(kite, "net-list", "--all", check_rc=0).stdout.splitlines()[2:] == []


def test_nat_network_reaches_outside_through_the_masquerade(release, host, tmp_path):
    """libvirt's default network: a guest gets 192.168.122.x, its router and DNS at .1, and
    reaches a web server in an 'outside' namespace that has no route back to the guests, so
    only the masquerade (the host's uplink address as source) makes it work."""
    kite = release
    outside = Netns()
    www = tmp_path / "www"
    www.mkdir()
    (www / "hello").write_text("hello from outside\n")
    try:
        host.sh(f"ip link add up0 type veth peer name eth0 netns {outside.name} && "
                "ip addr add 203.0.113.1/24 dev up0 && ip link set up0 up")
        outside.sh("ip addr add 203.0.113.2/24 dev eth0 && ip link set eth0 up")
        outside.sh(f"busybox httpd -p 8080 -h {www}")
        host.kite(kite, "net-define", "--name", "default", "--mode", "nat", check_rc=0)
        host.kite(kite, "net-start", "default", check_rc=0)
        bridge = json.loads(host.kite(kite, "net-dumpjson", "default").stdout)["bridge"]
        g = add_client(host, bridge, "52:54:00:00:01:01")
        try:
            assert dhcp(g, tmp_path, "natguest") == "192.168.122.2"
            assert g.router == ["192.168.122.1"]
            r = fetch(g, "http://203.0.113.2:8080/hello", 10)
            assert r.stdout == "hello from outside\n", r.stderr
            # DNS answers on the router address (dnsmasq: the network's own names).
            r = g.sh("busybox nslookup natguest 192.168.122.1", check=False)
            assert "192.168.122.2" in r.stdout, r.stdout + r.stderr
        finally:
            g.delete()
        host.kite(kite, "net-destroy", "default", check_rc=0)
        rules = host.sh("nft list ruleset").stdout
        assert "masquerade" not in rules, rules
        # Without the masquerade the outside cannot answer a guest: the test above can fail.
        host.kite(kite, "net-start", "default", check_rc=0)
        host.sh("nft flush ruleset")
        g = add_client(host, bridge, "52:54:00:00:01:02")
        try:
            dhcp(g, tmp_path, "natguest2")
            r = fetch(g, "http://203.0.113.2:8080/hello", 3)
            assert r.returncode != 0, r.stdout
        finally:
            g.delete()
        host.kite(kite, "net-destroy", "default", check_rc=0)
    finally:
        outside.sh("pkill -f 'busybox httpd -p 8080' || true", check=False)
        outside.delete()


def test_internal_network_joins_guests_without_the_host(release, host, tmp_path):
    kite = release
    host.kite(kite, "net-define", "--name", "intnet", "--mode", "internal", check_rc=0)
    host.kite(kite, "net-start", "intnet", check_rc=0)
    bridge = json.loads(host.kite(kite, "net-dumpjson", "intnet", check_rc=0).stdout)["bridge"]
    assert "inet " not in host.sh(f"ip -4 -o addr show dev {bridge}").stdout
    g1 = add_client(host, bridge, "52:54:00:00:00:11")
    g2 = add_client(host, bridge, "52:54:00:00:00:12")
    try:
        g1.sh("ip addr add 10.9.0.1/24 dev eth0")
        g2.sh("ip addr add 10.9.0.2/24 dev eth0")
        g1.sh("busybox ping -c 1 -W 5 10.9.0.2")
        # No DHCP server answers there.
        script = tmp_path / "s.sh"
        script.write_text(UDHCPC_SCRIPT)
        script.chmod(0o755)
        r = g1.sh(f"busybox udhcpc -i eth0 -n -q -f -t 2 -T 1 -s {script}", check=False)
        assert r.returncode != 0 and "BOUND" not in r.stdout, r.stdout
    finally:
        g1.delete()
        g2.delete()
    host.kite(kite, "net-destroy", "intnet", check_rc=0)


def test_a_killed_start_leaves_nothing_net_start_cannot_clean(release, host):
    """dnsmasq killed and the 'active' mark gone, as after a kite killed half-way through
    net-start: the network reads inactive, and net-start removes the leftovers and starts."""
    kite = release
    host.kite(kite, "net-define", "--name", "ho", "--mode", "hostonly", check_rc=0)
    host.kite(kite, "net-start", "ho", check_rc=0)
    run_dir = host.state / "run" / "networks" / "ho"
    os.kill(int((run_dir / "dnsmasq.pid").read_text()), 9)
    (run_dir / "active").unlink()
    lst = host.kite(kite, "net-list", "--all", check_rc=0).stdout.splitlines()
    assert lst[2].split()[:2] == ["ho", "inactive"], lst
    host.kite(kite, "net-start", "ho", check_rc=0)
    assert dnsmasq_running(host)
    host.kite(kite, "net-destroy", "ho", check_rc=0)
    assert not run_dir.exists()


def test_bad_networks_are_refused_before_anything_is_made(asan, host):
    kite = asan
    host.kite(kite, "net-define", "--name", "a", "--mode", "hostonly", check_rc=0)
    cases = [
        (["--name", "b", "--mode", "hostonly"], "overlaps network a's"),
        (["--name", "b", "--mode", "hostonly", "--ip", "192.168.56.77/16"], "overlaps"),
        (["--name", "a/b", "--mode", "internal"], "'a/b' is not a network name"),
        (["--name", "b", "--mode", "bridge", "--bridge", "nosuchbr0"],
         "nosuchbr0 is not a bridge on this host"),
        (["--name", "b", "--mode", "bridge"], "names the host's bridge"),
        (["--name", "b", "--mode", "nat", "--ip", "none"], "a nat network needs the host's"),
        (["--name", "b", "--mode", "wan"], "'wan' is not a network mode"),
        (["--name", "b", "--mode", "hostonly", "--ip", "10.1.0.1/24", "--dhcp",
          "10.2.0.10,10.2.0.20"], "the range must lie in the network's subnet"),
        (["--name", "b", "--mode", "internal", "--dhcp", "10.1.0.10,10.1.0.20"],
         "no host address and no DHCP"),
        (["--name", "b", "--mode", "hostonly", "--ip", "10.1.0.0/24"], "network or broadcast"),
        (["--name", "b", "--mode", "hostonly", "--ip", "10.1.0.1/24", "--bridge", "lo"],
         "an interface named lo exists and is not kite's"),
    ]
    for args, why in cases:
        r = host.kite(kite, "net-define", *args, check_rc=1)
        assert r.stderr.startswith("kite: error: ") and why in r.stderr, (args, r.stderr)
    lst = host.kite(kite, "net-list", "--all", check_rc=0).stdout.splitlines()
    assert [l.split()[0] for l in lst[2:]] == ["a"], lst
    # The same bridge twice.
    bridge = json.loads(host.kite(kite, "net-dumpjson", "a", check_rc=0).stdout)["bridge"]
    r = host.kite(kite, "net-define", "--name", "c", "--mode", "internal", "--bridge", bridge,
                  check_rc=1)
    assert f"bridge {bridge} belongs to network a" in r.stderr, r.stderr
    links = host.sh("ip -o link show").stdout.splitlines()
    assert [l.split(": ")[1] for l in links] == ["lo"], links  # nothing was made


def test_definition_round_trips_through_its_json(asan, host, tmp_path):
    kite = asan
    host.kite(kite, "net-define", "--name", "lab", "--mode", "hostonly", "--ip", "10.20.0.1/24",
              "--dhcp", "10.20.0.50,10.20.0.60", check_rc=0)
    text = host.kite(kite, "net-dumpjson", "lab", check_rc=0).stdout
    d = json.loads(text)
    assert (d["mode"], d["ip"], d["dhcp"]) == ("hostonly", "10.20.0.1/24",
                                               {"start": "10.20.0.50", "end": "10.20.0.60"})
    host.kite(kite, "net-autostart", "lab", check_rc=0)
    assert json.loads(host.kite(kite, "net-dumpjson", "lab").stdout)["autostart"] is True
    f = tmp_path / "lab.json"
    f.write_text(text)
    host.kite(kite, "net-undefine", "lab", check_rc=0)
    r = host.kite(kite, "net-define", str(f), check_rc=0)
    assert r.stdout == f"Network lab defined from {f}\n\n"
    assert json.loads(host.kite(kite, "net-dumpjson", "lab").stdout) == d
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps(dict(d, speed=10)))
    r = host.kite(kite, "net-define", str(bad), check_rc=1)
    assert "unknown field 'speed'" in r.stderr


def test_machines_attach_by_network_name(release, host, tmp_path):
    """--net network=NAME: stored as the name; kite start gives the VMM the network's bridge
    (in the definition it boots) and refuses while the network is inactive."""
    kite = release
    kernel = tmp_path / "vmlinuz"
    kernel.write_bytes(b"not a kernel: the fake runner only reads it")
    fake = {"KITE_RUNNER": f"{kite} _fake-run"}

    def k(*args, rc=0):
        env = dict(os.environ, KITE_STATE_DIR=str(host.state), **fake)
        r = run(["ip", "netns", "exec", host.name, kite, *args], env=env)
        assert r.returncode == rc, f"kite {' '.join(args)}: {r.stdout}{r.stderr}"
        return r

    k("net-define", "--name", "vboxnet0", "--mode", "hostonly")
    k("create", "vm", "--kernel", str(kernel), "--net", "network=vboxnet0")
    rows = k("domiflist", "vm").stdout.splitlines()[2:]
    assert rows[0].split()[:4] == ["-", "network", "vboxnet0", "virtio"], rows
    stored = json.loads(k("dumpjson", "vm").stdout)["nics"][0]
    assert (stored["type"], stored["network"], "bridge" in stored) == ("network", "vboxnet0",
                                                                     False), stored
    r = k("start", "vm", rc=1)
    assert "network vboxnet0 is not active: kite net-start vboxnet0" in r.stderr, r.stderr
    k("net-start", "vboxnet0")
    k("start", "vm")
    booted = json.loads((host.state / "run" / "vm.json").read_text())["nics"][0]
    assert (booted["network"], booted["bridge"]) == ("vboxnet0", "kitebr0"), booted
    k("destroy", "vm")
    k("net-destroy", "vboxnet0")
    r = k("create", "vm2", "--kernel", str(kernel), "--net", "network=no/such", rc=1)
    assert "'no/such' is not a network name" in r.stderr, r.stderr
    # virsh's spelling: attach-interface NAME network|bridge SOURCE.
    k("attach-interface", "vm", "network", "lab", "--config", "--mac", "52:54:00:00:00:31")
    k("attach-interface", "vm", "bridge", "br7", "--config", "--mac", "52:54:00:00:00:32")
    rows = [r.split()[:3] for r in k("domiflist", "vm").stdout.splitlines()[2:] if r.strip()]
    assert rows == [["-", "network", "vboxnet0"], ["-", "network", "lab"],
                    ["-", "bridge", "br7"]], rows


@pytest.mark.kvm
def test_guest_on_a_hostonly_network_gets_its_address(release, host):
    """A real guest NIC (the virtio_net guest program under kite) on kite's host-only network:
    DHCP hands it 192.168.56.101 from 192.168.56.1, it finds the host there, and the lease
    shows in net-dhcp-leases. Runs where /dev/kvm is (the KVM host VM here)."""
    from test_guest_programs import boot, guest_elf
    kite = release
    host.kite(kite, "net-define", "--name", "vboxnet0", "--mode", "hostonly", check_rc=0)
    host.kite(kite, "net-start", "vboxnet0", check_rc=0)
    base = (192 << 24) | (168 << 16) | (56 << 8)
    argv = ["ip", "netns", "exec", host.name, "env", f"KITE_STATE_DIR={host.state}", kite,
            "run", "--kernel", guest_elf("virtio_net"), "-m", "64M", "--console", "stdio",
            "--no-reboot", "--append", f"base={base} host=1 dns=1 ip=101",
            "--net", "network=vboxnet0,mac=52:54:00:12:34:77"]
    r = boot(argv, timeout=300)
    for line in ["DHCP offer: 192.168.56.101 from 192.168.56.1", "DHCP ack: 192.168.56.101",
                 "ARP: gateway 192.168.56.1 is at"]:
        assert any(p.startswith(line) for p in r.passed), r.output()
    leases = host.kite(kite, "net-dhcp-leases", "vboxnet0", check_rc=0).stdout
    assert re.search(r"52:54:00:12:34:77 +ipv4 +192\.168\.56\.101/24", leases), leases
    # The VMM's tap left with it: only the bridge is left on the host side.
    links = host.sh("ip -o link show").stdout
    assert "kitetap" not in links, links
    host.kite(kite, "net-destroy", "vboxnet0", check_rc=0)
