"""The minimal guest kernel of `make guest-min` (docs/guest-min.md): booted by QEMU's software
CPU as the referee (bzImage through SeaBIOS, vmlinux through its PVH note) to the initramfs's
marker and an ACPI power-off, with the virtio checks its init runs on kite.check (a disk and a
NIC); and by kite when /dev/kvm exists. make check does not build the kernel (10-30 minutes):
without build/guest-min these tests skip and say how to build it."""
import hashlib
import os
import re
import shutil
import subprocess

import pytest

from conftest import ROOT, linux_cmdline, run

GUEST = os.path.join(ROOT, "build", "guest-min")
BZIMAGE = os.path.join(GUEST, "bzImage")
VMLINUX = os.path.join(GUEST, "vmlinux")
INITRD = os.path.join(GUEST, "initramfs.cpio.gz")
QEMU = shutil.which("qemu-system-x86_64")
MARKER = "KITE-GUEST-UP uptime="
MIB = 1 << 20
# What the init writes to the first MiB of /dev/vda (scripts/guest/init).
GUEST_PATTERN = (b"kite-guest-min-pattern\n" * (MIB // 23 + 1))[:MIB]
# What the host puts in the second MiB for the guest to read.
HOST_PATTERN = bytes((i * 7 + 3) & 0xFF for i in range(MIB))

pytestmark = pytest.mark.skipif(
    not all(os.path.exists(p) for p in (BZIMAGE, VMLINUX, INITRD)),
    reason="build/guest-min is absent: `make guest-min` builds it (10-30 minutes; make check "
           "does not)")

needs_qemu = pytest.mark.skipif(QEMU is None, reason="qemu-system-x86_64 is not installed")
needs_kvm = pytest.mark.kvm


def qemu_argv(kernel, append, devices=()):
    return [QEMU, "-accel", "tcg", "-M", "q35", "-m", "256M", "-smp", "1", "-nographic",
            "-nodefaults", "-no-reboot", "-serial", "stdio", "-kernel", kernel,
            "-initrd", INITRD, "-append", append] + list(devices)


def make_disk(path):
    """A 4 MiB raw disk: zeros, the host's pattern in the second MiB."""
    with open(path, "wb") as f:
        f.write(bytes(MIB))
        f.write(HOST_PATTERN)
        f.write(bytes(2 * MIB))


def assert_marker_and_poweroff(r):
    out = r.stdout + r.stderr
    assert r.returncode == 0, out
    assert any(l.startswith(MARKER) for l in r.stdout.splitlines()), out
    # The guest's own power-off, not a kill or a crash: ACPI S5 ends QEMU/kite with status 0
    # and the kernel says so just before.
    assert "reboot: Power down" in r.stdout, out


def check_lines(stdout):
    """The guest init's CHECK lines. The init keeps kernel messages off the console while it
    checks; should one still land on a CHECK line (`CHECK eth0 10.0.2.15[   16.27] IPv6: ...`),
    the printk timestamp and what follows it are cut off."""
    lines = []
    for line in stdout.splitlines():
        line = line.strip()
        if line.startswith("CHECK "):
            lines.append(re.sub(r"\[\s*\d+\.\d+\].*$", "", line).strip())
    return lines


def assert_checks(r, disk, cmdline):
    out = r.stdout + r.stderr
    lines = check_lines(r.stdout)
    assert f"CHECK cmdline {cmdline}" in lines, out
    assert "CHECK vda ok" in lines, out
    assert f"CHECK vda-read md5={hashlib.md5(HOST_PATTERN).hexdigest()}" in lines, out
    assert "CHECK eth0 10.0.2.15" in lines, out
    with open(disk, "rb") as f:
        data = f.read()
    assert data[:MIB] == GUEST_PATTERN  # the guest's writes reached the file
    assert data[MIB:2 * MIB] == HOST_PATTERN and data[2 * MIB:] == bytes(2 * MIB)


@needs_qemu
@pytest.mark.parametrize("kernel", [BZIMAGE, VMLINUX], ids=["bzImage", "vmlinux-pvh"])
def test_qemu_tcg_boots_to_marker_and_powers_off(kernel):
    r = run(qemu_argv(kernel, "console=ttyS0 kite.poweroff"), timeout=300)
    assert_marker_and_poweroff(r)


@needs_qemu
def test_qemu_tcg_virtio_blk_and_net_checks(tmp_path):
    disk = tmp_path / "disk.raw"
    make_disk(disk)
    append = "console=ttyS0 kite.check kite.poweroff"
    r = run(qemu_argv(VMLINUX, append, [
        "-drive", f"file={disk},format=raw,if=none,id=d0,cache=writethrough",
        "-device", "virtio-blk-pci,drive=d0",
        "-netdev", "user,id=n0", "-device", "virtio-net-pci,netdev=n0,romfile="]), timeout=300)
    assert_marker_and_poweroff(r)
    assert_checks(r, disk, append)


@needs_kvm
def test_kite_boots_to_marker_and_powers_off(kite):
    r = run([kite, "run", "--kernel", VMLINUX, "--initrd", INITRD, "-m", "256M",
             "--append", "console=ttyS0 kite.poweroff", "--console", "stdio"], timeout=300)
    assert_marker_and_poweroff(r)


@needs_kvm
def test_kite_virtio_blk_and_net_checks(kite, tmp_path):
    disk = tmp_path / "disk.raw"
    make_disk(disk)
    append = "console=ttyS0 kite.check kite.poweroff"
    r = run([kite, "run", "--kernel", VMLINUX, "--initrd", INITRD, "-m", "256M",
             "--append", append, "--console", "stdio",
             "--disk", f"{disk},format=raw", "--net", "user"], timeout=300)
    assert_marker_and_poweroff(r)
    assert_checks(r, disk, linux_cmdline(append))
