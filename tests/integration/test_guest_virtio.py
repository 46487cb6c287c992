"""Guest programs with our virtio-pci driver (tests/guests/virtio_*.c, lib/pci.c, lib/virtio.c)
against QEMU's virtio-pci devices: QEMU referees the driver, so that the same programs under
kite (test_guest_virtio_kite.py, which imports the helpers below) check kite's devices.
QEMU runs with -accel kvm when /dev/kvm exists, else TCG."""
import hashlib
import os
import socket
import threading

import pytest

from test_guest_programs import boot, qemu_argv

# Disk layout shared with tests/guests/virtio_blk.c.
SECTOR = 512
DISK_SIZE = 8 << 20
HOST_OFF, GUEST_OFF, IO_LEN = 1 << 20, 2 << 20, 16 * SECTOR
DISCARD_OFF, DISCARD_LEN = 4 << 20, 1 << 20
HOST_SEED, GUEST_SEED, RO_SEED = 0x11, 0x22, 0x33
FILLER = 0xab
SERIAL = "kite-vd-0042"


def pattern(off, length, seed):
    return bytes((((o >> 9) * 31 + (o & 511) * 7 + seed) & 0xff) for o in range(off, off + length))


def make_disk(path, ro=False):
    """A fully allocated raw disk: FILLER everywhere, the host's pattern at HOST_OFF and, for
    the read-only run, RO_SEED's pattern where the guest will try to write."""
    data = bytearray([FILLER]) * DISK_SIZE
    data[HOST_OFF:HOST_OFF + IO_LEN] = pattern(HOST_OFF, IO_LEN, HOST_SEED)
    if ro:
        data[GUEST_OFF:GUEST_OFF + IO_LEN] = pattern(GUEST_OFF, IO_LEN, RO_SEED)
    with open(path, "wb") as f:
        f.write(data)
        os.fsync(f.fileno())
    return bytes(data)


def blk_append(ro=False, extra=""):
    a = f"serial={SERIAL} sectors={DISK_SIZE // SECTOR}" + (" ro=1" if ro else "")
    return a + (" " + extra if extra else "")


BLK_EXPECTED = ["virtio-blk: VERSION_1 negotiated", f"capacity {DISK_SIZE // SECTOR} sectors",
                "read: the host's pattern", "read at sector 16384 (the capacity) fails with IOERR",
                "read across the end", "write at sector 16384 fails with IOERR",
                "device status"]
BLK_RW_EXPECTED = BLK_EXPECTED + ["write: 16 sectors", "read back: the written pattern",
                                  "flush (status 0)", f'get-id: serial "{SERIAL}"',
                                  "discard: 2048 sectors"]
BLK_RO_EXPECTED = BLK_EXPECTED + ["read-only: the device offers VIRTIO_BLK_F_RO",
                                  "read-only: a write fails with IOERR",
                                  "read-only: the data is unchanged"]


def check_blk_rw(r, path, before):
    """The guest's writes landed where it wrote them and nowhere else; the discarded range is
    a hole in the host file."""
    r.assert_all_passed(BLK_RW_EXPECTED)
    with open(path, "rb") as f:
        after = f.read()
    assert len(after) == DISK_SIZE
    assert after[GUEST_OFF:GUEST_OFF + IO_LEN] == pattern(GUEST_OFF, IO_LEN, GUEST_SEED)
    # Everything outside the written and discarded ranges is as the host left it.
    assert after[:GUEST_OFF] == before[:GUEST_OFF]
    assert after[GUEST_OFF + IO_LEN:DISCARD_OFF] == before[GUEST_OFF + IO_LEN:DISCARD_OFF]
    assert after[DISCARD_OFF + DISCARD_LEN:] == before[DISCARD_OFF + DISCARD_LEN:]
    fd = os.open(path, os.O_RDONLY)
    try:
        assert os.lseek(fd, DISCARD_OFF, os.SEEK_HOLE) == DISCARD_OFF, "no hole where discarded"
        assert os.lseek(fd, DISCARD_OFF, os.SEEK_DATA) >= DISCARD_OFF + DISCARD_LEN
    finally:
        os.close(fd)
    assert os.stat(path).st_blocks * 512 <= DISK_SIZE - DISCARD_LEN  # what du reports


def check_blk_ro(r, path, before):
    r.assert_all_passed(BLK_RO_EXPECTED)
    with open(path, "rb") as f:
        assert hashlib.sha256(f.read()).digest() == hashlib.sha256(before).digest()


def qemu_blk(path, ro=False, modern_only=False):
    drive = f"file={path},if=none,id=d0,format=raw,discard=unmap"
    dev = f"virtio-blk-pci,drive=d0,serial={SERIAL}"
    if ro:
        drive += ",readonly=on"
    if modern_only:
        dev += ",disable-legacy=on"
    return ["-drive", drive, "-device", dev]


@pytest.mark.parametrize("bars", ["firmware", "assign"])
def test_virtio_blk_write_read_flush_id_discard_qemu(tmp_path, bars):
    """bars=assign: the program ignores what SeaBIOS assigned and places every BAR itself at
    0xC0000000+, as it must under kite, which runs no firmware."""
    disk = tmp_path / "disk.raw"
    before = make_disk(disk)
    extra = "pci=assign" if bars == "assign" else ""
    r = boot(qemu_argv("virtio_blk", blk_append(extra=extra),
                       extra=qemu_blk(disk, modern_only=bars == "assign")))
    check_blk_rw(r, disk, before)
    if bars == "assign":
        assert any(l.startswith("pci: 00:") and " assigned at 0xc" in l for l in r.lines), \
            r.output()


def test_virtio_blk_read_only_refuses_writes_qemu(tmp_path):
    disk = tmp_path / "disk.raw"
    before = make_disk(disk, ro=True)
    r = boot(qemu_argv("virtio_blk", blk_append(ro=True), extra=qemu_blk(disk, ro=True)))
    check_blk_ro(r, disk, before)


def test_virtio_blk_wrong_serial_is_reported_qemu(tmp_path):
    """The program's get-id check can fail: a serial other than the one expected."""
    disk = tmp_path / "disk.raw"
    make_disk(disk)
    r = boot(qemu_argv("virtio_blk", blk_append().replace(SERIAL, "other-serial"),
                       extra=qemu_blk(disk)))
    assert any(f.startswith(f'get-id: serial "{SERIAL}"') for f in r.failed), r.output()


HOSTILE_CASES = ["data buffer just past the end of RAM", "data buffer whose end wraps around 2^64",
                 "data buffer at 256 TiB", "descriptor chain looping 1 -> 2 -> 1",
                 "descriptor next index 1000 in a queue of 64", "data lengths summing past 2^32",
                 "queue size 3", "notification before DRIVER_OK"]
HOSTILE_EXPECTED = ([f"{c}: the device" for c in HOSTILE_CASES] +
                    [f"{c}: after a reset the device reads the host's pattern again"
                     for c in HOSTILE_CASES])
DMA_TO_NOWHERE = HOSTILE_CASES[:3]


def check_hostile(r, path, before, strict):
    """Every hostile chain handled acceptably, the device usable after each, no write to the
    disk (all requests were reads), and the VMM exited 0."""
    r.assert_all_passed(HOSTILE_EXPECTED + (["wrapped buffer: guest page 0 unchanged"]
                                            if strict else []))
    if strict:
        for case in HOSTILE_CASES[:6]:
            assert any(p.startswith(f"{case}: the device ") and
                       p.endswith(("failed the request", "set NEEDS_RESET")) for p in r.passed), \
                r.output()
    with open(path, "rb") as f:
        assert f.read() == before


def test_virtio_hostile_driver_qemu(tmp_path):
    disk = tmp_path / "disk.raw"
    before = make_disk(disk)
    r = boot(qemu_argv("virtio_hostile", extra=qemu_blk(disk)))
    check_hostile(r, disk, before, strict=False)
    # QEMU's own verdicts on the malformed chains: it marks the device broken.
    for case in HOSTILE_CASES[3:6]:
        assert f"{case}: the device set NEEDS_RESET" in r.passed, r.output()


def test_virtio_hostile_strict_checks_can_fail_qemu(tmp_path):
    """strict=1 (what kite is held to) fails on QEMU, which completes reads into unbacked
    addresses and writes the part of a buffer that wraps past 2^64 at guest address 0."""
    disk = tmp_path / "disk.raw"
    make_disk(disk)
    r = boot(qemu_argv("virtio_hostile", "strict=1", extra=qemu_blk(disk)))
    assert "wrapped buffer: guest page 0 unchanged" in " ".join(r.failed), r.output()
    for case in DMA_TO_NOWHERE:
        assert f"{case}: the device completed OK" in r.failed, r.output()


PCI_EXPECTED = ["config mechanism #1: a host bridge at 00:00.0", "memory BARs (",
                "MCFG: segment 0 from bus 0", "ECAM shows the same IDs",
                "ECAM: an absent function", "interrupt line of 00:"]


@pytest.mark.parametrize("bars", ["firmware", "assign"])
def test_pci_bus_ecam_and_bars_qemu(bars):
    # q35 brings 00:00.0, 00:1f.0, 00:1f.2 and 00:1f.3; two virtio-rng functions on top.
    append = "functions=6" + (" pci=assign" if bars == "assign" else "")
    r = boot(qemu_argv("pci_bus", append, extra=["-device", "virtio-rng-pci", "-device",
                                                  "virtio-rng-pci,disable-legacy=on"]))
    r.assert_all_passed(PCI_EXPECTED + ["6 functions on bus 0"])
    assigned = [l for l in r.lines if l.startswith("pci: 00:") and " assigned at 0xc" in l]
    assert len(assigned) == (5 if bars == "assign" else 0), r.output()


RNG_EXPECTED = ["virtio-rng: VERSION_1 negotiated", "64-byte request: 64 bytes",
                "4096-byte request: 4096 bytes", "two requests return different bytes"]
MSIX_EXPECTED = ["MSI-X capability", "virtio-rng: VERSION_1 negotiated",
                 "queue 0 MSI-X vector reads back 0",
                 "one MSI-X interrupt for one used-ring update (1)",
                 "the used ring was updated when the interrupt arrived"]


def test_virtio_rng_returns_bytes_qemu():
    boot(qemu_argv("virtio_rng", extra=["-device", "virtio-rng-pci"])).assert_all_passed(
        RNG_EXPECTED)


def test_virtio_msix_interrupt_for_used_ring_qemu():
    boot(qemu_argv("virtio_msix", extra=["-device", "virtio-rng-pci"])).assert_all_passed(
        MSIX_EXPECTED)


def test_virtio_programs_report_a_missing_device_qemu():
    r = boot(qemu_argv("virtio_rng"))
    assert "virtio-rng device found" in r.failed, r.output()


# ---- virtio-net behind user-mode NAT ----

ECHO_PORT = 7777
GUEST_LINE = b"hello from the guest\n"
ECHO_LINE = b"echo me through hostfwd: kite\n"
UDP_PORT = 7778
UDP_DATAGRAM = b"udp datagram through hostfwd"
NET_EXPECTED = ["virtio-net: VERSION_1 negotiated", "DHCP offer: 10.0.2.15 from 10.0.2.2",
                "DHCP ack: 10.0.2.15", "ARP: gateway 10.0.2.2 is at",
                "DNS: a reply from 10.0.2.3", "TCP: connected to 10.0.2.2:",
                "TCP: 21 bytes sent and acknowledged",
                'TCP: the host\'s reply "hello from the host: hello from the guest"',
                "TCP: the host closed (FIN)", "TCP: our FIN acknowledged",
                f"hostfwd: a SYN for port {ECHO_PORT} arrived",
                f"hostfwd: echoed {len(ECHO_LINE)} bytes", "hostfwd: the host closed (FIN)",
                "hostfwd: our FIN acknowledged",
                f"UDP hostfwd: a datagram for port {UDP_PORT} arrived ({len(UDP_DATAGRAM)} bytes)",
                f"UDP hostfwd: echoed {len(UDP_DATAGRAM)} bytes"]


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def free_udp_port():
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class HostService:
    """A TCP service on the host's 127.0.0.1: reads one line, answers "hello from the host: "
    plus that line, closes."""

    def __init__(self):
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(1)
        self.sock.settimeout(120)
        self.port = self.sock.getsockname()[1]
        self.received = None
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self):
        try:
            conn, _ = self.sock.accept()
        except OSError:
            return
        with conn:
            conn.settimeout(30)
            data = b""
            while not data.endswith(b"\n"):
                chunk = conn.recv(256)
                if not chunk:
                    break
                data += chunk
            self.received = data
            conn.sendall(b"hello from the host: " + data)

    def close(self):
        self.sock.close()


class EchoClient:
    """Once the guest says it listens, connects to the forwarded TCP host port (READY: hostfwd)
    or sends a datagram to the forwarded UDP one (READY: udp); keeps what comes back."""

    def __init__(self, port, udp_port):
        self.port, self.udp_port = port, udp_port
        self.echo = self.udp_echo = None
        self.thread = self.udp_thread = None

    def __call__(self, lines):
        if lines[-1] == "READY: hostfwd" and self.thread is None:
            self.thread = threading.Thread(target=self._run, daemon=True)
            self.thread.start()
        if lines[-1] == "READY: udp" and self.udp_thread is None:
            self.udp_thread = threading.Thread(target=self._run_udp, daemon=True)
            self.udp_thread.start()
        return False

    def _run(self):
        with socket.create_connection(("127.0.0.1", self.port), timeout=30) as c:
            c.sendall(ECHO_LINE)
            buf = b""
            while len(buf) < len(ECHO_LINE):
                chunk = c.recv(256)
                if not chunk:
                    break
                buf += chunk
            self.echo = buf

    def _run_udp(self):
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as u:
            u.settimeout(1)
            for _ in range(20):
                u.sendto(UDP_DATAGRAM, ("127.0.0.1", self.udp_port))
                try:
                    self.udp_echo = u.recv(2048)
                    return
                except socket.timeout:
                    continue


def run_net(argv_for):
    """Boots argv_for(host TCP port, host UDP port, append) with a host service and echo
    clients for both forwarded ports; checks what every end saw."""
    service, host_port, host_udp_port = HostService(), free_port(), free_udp_port()
    client = EchoClient(host_port, host_udp_port)
    try:
        append = f"tcp_port={service.port} echo_port={ECHO_PORT} udp_port={UDP_PORT}"
        r = boot(argv_for(host_port, host_udp_port, append), stop=client, timeout=120)
    finally:
        service.close()
    r.assert_all_passed(NET_EXPECTED)
    service.thread.join(timeout=10)
    assert service.received == GUEST_LINE, r.output()
    assert client.thread is not None, r.output()
    client.thread.join(timeout=30)
    assert client.echo == ECHO_LINE, r.output()
    assert client.udp_thread is not None, r.output()
    client.udp_thread.join(timeout=30)
    assert client.udp_echo == UDP_DATAGRAM, r.output()
    return r


SECOND_NIC_EXPECTED = ["virtio-net: VERSION_1 negotiated", "DHCP offer: 10.0.3.15 from 10.0.3.2",
                       "DHCP ack: 10.0.3.15", "ARP: gateway 10.0.3.2 is at",
                       "DNS: a reply from 10.0.3.3", "TCP: connected to 10.0.3.2:",
                       'TCP: the host\'s reply "hello from the host: hello from the guest"',
                       "TCP: our FIN acknowledged"]


def run_second_nic(argv_for):
    """The second card (nic=1) on 10.0.3.0/24: DHCP, DNS, TCP to the host service."""
    service = HostService()
    try:
        r = boot(argv_for(f"nic=1 subnet=3 tcp_port={service.port}"), timeout=120)
    finally:
        service.close()
    r.assert_all_passed(SECOND_NIC_EXPECTED)
    service.thread.join(timeout=10)
    assert service.received == GUEST_LINE, r.output()
    return r


# --net user's net=, host=, dns=, dhcpstart= (QEMU's -netdev user options of the same names).
CUSTOM_NET = "net=10.0.9.0/24,host=10.0.9.9,dns=10.0.9.8,dhcpstart=10.0.9.50"
CUSTOM_NET_EXPECTED = ["DHCP offer: 10.0.9.50 from 10.0.9.9", "DHCP ack: 10.0.9.50",
                       "ARP: gateway 10.0.9.9 is at", "DNS: a reply from 10.0.9.8",
                       "TCP: connected to 10.0.9.9:",
                       'TCP: the host\'s reply "hello from the host: hello from the guest"']


def run_custom_net(argv_for):
    """DHCP, DNS and the host service at the addresses CUSTOM_NET gives."""
    service = HostService()
    try:
        r = boot(argv_for(f"subnet=9 host=9 dns=8 ip=50 tcp_port={service.port}"), timeout=120)
    finally:
        service.close()
    r.assert_all_passed(CUSTOM_NET_EXPECTED)
    assert service.received == GUEST_LINE, r.output()
    return r


def run_restricted(argv_for):
    """restrict=on: the guest still gets its address and its forwarded port still works, but
    its own connection to the host (10.0.2.2, the host's 127.0.0.1) is refused, though a
    service listens there."""
    service, host_port = HostService(), free_port()
    client = EchoClient(host_port, None)
    try:
        r = boot(argv_for(host_port, f"tcp_port={service.port} echo_port={ECHO_PORT}"),
                 stop=client, timeout=120)
    finally:
        service.close()
    assert "DHCP ack: 10.0.2.15" in " ".join(r.passed), r.output()
    assert f"TCP: connected to 10.0.2.2:{service.port} (the host's 127.0.0.1)" in r.failed, \
        r.output()
    assert service.received is None, r.output()
    assert client.thread is not None, r.output()
    client.thread.join(timeout=30)
    assert client.echo == ECHO_LINE, r.output()
    return r


def qemu_net(host_port, host_udp_port=None):
    fwd = f"hostfwd=tcp:127.0.0.1:{host_port}-:{ECHO_PORT}"
    if host_udp_port:
        fwd += f",hostfwd=udp:127.0.0.1:{host_udp_port}-:{UDP_PORT}"
    return ["-netdev", f"user,id=n0,{fwd}", "-device", "virtio-net-pci,netdev=n0"]


def test_virtio_net_dhcp_dns_tcp_hostfwd_qemu():
    run_net(lambda host_port, host_udp_port, append:
            qemu_argv("virtio_net", append, extra=qemu_net(host_port, host_udp_port)))


def test_virtio_net_second_nic_on_10_0_3_qemu():
    run_second_nic(lambda append: qemu_argv(
        "virtio_net", append,
        extra=["-netdev", "user,id=n0", "-device", "virtio-net-pci,netdev=n0",
               "-netdev", "user,id=n1,net=10.0.3.0/24", "-device", "virtio-net-pci,netdev=n1"]))


def test_virtio_net_user_addresses_qemu():
    run_custom_net(lambda append: qemu_argv(
        "virtio_net", append,
        extra=["-netdev", f"user,id=n0,{CUSTOM_NET}", "-device", "virtio-net-pci,netdev=n0"]))


def test_virtio_net_user_restrict_qemu():
    run_restricted(lambda host_port, append: qemu_argv(
        "virtio_net", append,
        extra=["-netdev", f"user,id=n0,restrict=on,hostfwd=tcp:127.0.0.1:{host_port}-:{ECHO_PORT}",
               "-device", "virtio-net-pci,netdev=n0"]))


def test_virtio_net_closed_host_port_is_reported_qemu():
    """Nothing listens on the host port: the guest's connection attempt must fail visibly."""
    port = free_port()
    r = boot(qemu_argv("virtio_net", f"tcp_port={port}",
                       extra=qemu_net(free_port())), timeout=120)
    assert f"TCP: connected to 10.0.2.2:{port} (the host's 127.0.0.1)" in r.failed, r.output()
    assert "DHCP offer: 10.0.2.15 from 10.0.2.2" in r.passed, r.output()
