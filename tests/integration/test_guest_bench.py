"""bench/io's guest program (tests/guests/virtio_bench.c) in a tiny run, as a correctness check of
what the benchmark measures: every virtio-blk request's status and sector stamp (PASS lines), the
stamps in the host file afterwards, and every byte of the TCP bulk send at the host's sink. With
kick=always the program notifies for every batch and sends one frame at a time (the driver
library's default path) instead of as the device asks. QEMU runs with -accel kvm when /dev/kvm
exists, else TCG; the kite tests need KVM."""
import os
import re
import socket
import struct
import subprocess
import sys
import threading

import pytest

from test_guest_programs import boot, guest_elf, qemu_argv

MIB = 1  # the region the blk rows cover, and the bytes the net row sends
BLK_APPEND = f"mode=blk mib={MIB} bs=65536 rops=64 qd=4"
BLK_ROWS = ["blk seqwrite qd=1 bs=65536", "blk seqwrite qd=4 bs=65536",
            "blk seqread qd=1 bs=65536", "blk seqread qd=4 bs=65536",
            "blk randread qd=1 bs=4096", "blk randread qd=4 bs=4096"]
STAMP = 0x6b6974650000000
MSS = 1460


def make_disk(path):
    with open(path, "wb") as f:
        f.write(b"\xab" * ((MIB + 1) << 20))


def check_blk(r, path):
    r.assert_all_passed([f"{row}: " for row in BLK_ROWS] + ["blk: device status"])
    for row in BLK_ROWS:
        assert any(l.startswith(f"BENCH: {row} ") and " kBps=" in l for l in r.lines), r.output()
    with open(path, "rb") as f:
        data = f.read()
    # Every sector of the region carries its number; the sector after it is untouched.
    for s in range((MIB << 20) // 512):
        assert struct.unpack_from("<Q", data, s * 512)[0] == STAMP | s, f"sector {s}"
    assert data[MIB << 20:] == b"\xab" * (1 << 20)


class Sink:
    """Takes one connection on 127.0.0.1 and reads it to EOF."""

    def __init__(self):
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.sock.settimeout(60)
        self.port = self.sock.getsockname()[1]
        self.data = bytearray()
        self.thread = threading.Thread(target=self.serve, daemon=True)
        self.thread.start()

    def serve(self):
        try:
            conn, _ = self.sock.accept()
        except OSError:
            return
        with conn:
            conn.settimeout(60)
            while chunk := conn.recv(1 << 16):
                self.data += chunk

    def close(self):
        self.sock.close()
        self.thread.join(timeout=10)


def run_net(argv_for_append, extra=""):
    sink = Sink()
    try:
        r = boot(argv_for_append(f"mode=net mib={MIB} port={sink.port} {extra}".strip()))
    finally:
        sink.close()
    r.assert_all_passed(["net: TCP connected", f"net: {MIB << 20} of {MIB << 20} bytes",
                         "net: FIN exchanged"])
    assert any(l.startswith("BENCH: net tcpsend ") for l in r.lines), r.output()
    block = bytes((i % MSS) % 251 for i in range(MSS))
    want = (block * ((MIB << 20) // MSS + 1))[:MIB << 20]
    assert len(sink.data) == len(want) and bytes(sink.data) == want


def qemu_blk(path):
    return ["-drive", f"file={path},if=none,id=d0,format=raw",
            "-device", "virtio-blk-pci,drive=d0"]


def kite_argv(kite, append, devices):
    return [kite, "run", "--kernel", guest_elf("virtio_bench"), "-m", "64M", "--console",
            "stdio", "--no-reboot", "--append", append] + devices


def test_virtio_bench_blk_qemu(tmp_path):
    disk = tmp_path / "disk.raw"
    make_disk(disk)
    check_blk(boot(qemu_argv("virtio_bench", BLK_APPEND, extra=qemu_blk(disk))), disk)


def test_virtio_bench_net_qemu():
    run_net(lambda append: qemu_argv("virtio_bench", append,
                                     extra=["-netdev", "user,id=n0",
                                            "-device", "virtio-net-pci,netdev=n0"]))


@pytest.mark.kvm
@pytest.mark.parametrize("kick", ["", "kick=always"])
def test_virtio_bench_blk_kite(kite, tmp_path, kick):
    disk = tmp_path / "disk.raw"
    make_disk(disk)
    append = f"{BLK_APPEND} {kick}".strip()
    check_blk(boot(kite_argv(kite, append, ["--disk", f"{disk},format=raw"])), disk)


@pytest.mark.kvm
@pytest.mark.parametrize("kick", ["", "kick=always"])
def test_virtio_bench_net_kite(kite, kick):
    run_net(lambda append: kite_argv(kite, append, ["--net", "user"]), kick)


@pytest.mark.kvm
def test_io_ab_compares_two_builds(kite, tmp_path):
    """bench/io-ab runs each binary in both kick modes and prints a median for every row and
    column (here the same build twice, one rep of 2 MiB: the figures are not compared)."""
    root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    out = subprocess.run([sys.executable, os.path.join(root, "bench", "io-ab"), "--reps", "1",
                          "--mib", "2", "--qd", "4", "--dir", str(tmp_path), kite, kite],
                         capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stdout + out.stderr
    lines = out.stdout.splitlines()
    assert sum(l.startswith("rep 1/1 ") for l in lines) == 4, out.stdout
    rows = {l.split()[0] + " " + l.split()[1]: l.split()[2:] for l in lines
            if re.match(r"^(seqwrite|seqread|randread) qd=", l)}
    assert sorted(rows) == sorted(f"{k} qd={q}" for k in ("seqwrite", "seqread", "randread")
                                  for q in (1, 4)), out.stdout
    for row, values in rows.items():
        assert len(values) == 4 and all(float(v) > 0 for v in values), (row, out.stdout)
    assert os.listdir(tmp_path) == [], "the disk is left behind"


@pytest.mark.parametrize("args, says", [
    (["/nonexistent/kite"], "/nonexistent/kite: not an executable file"),
    (["--reps", "0", "/bin/true"], "--reps 0 (want 1..1000)"),
    (["--qd", "65", "/bin/true"], "--qd 65 (want 1..64)"),
])
def test_io_ab_refuses_bad_input(tmp_path, args, says):
    """Bad arguments get one 'kite: error:' line and exit 2 before anything runs (no disk)."""
    root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    out = subprocess.run([sys.executable, os.path.join(root, "bench", "io-ab"), "--dir",
                          str(tmp_path)] + args, capture_output=True, text=True, timeout=60)
    assert out.returncode == 2, out.stdout + out.stderr
    assert out.stderr.startswith("kite: error: bench/io-ab: ") and says in out.stderr, out.stderr
    assert os.listdir(tmp_path) == []
