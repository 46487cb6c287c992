"""The virtio guest programs of tests/guests/ (our virtio-pci driver) against kite's virtio
devices, on the release and the ASan+UBSan build: the same checks as against QEMU's devices
in test_guest_virtio.py. kite runs no firmware, so the programs assign the BARs themselves.
They need KVM: without /dev/kvm the whole module skips, saying so; with it, every test runs."""

import re

import pytest

from test_guest_programs import boot, guest_elf
from test_guest_virtio import (ECHO_PORT, MSIX_EXPECTED, PCI_EXPECTED, RNG_EXPECTED, SERIAL,
                               UDP_PORT, blk_append,
                               check_blk_ro, check_blk_rw, check_hostile, make_disk,
                               CUSTOM_NET, run_custom_net, run_net, run_restricted,
                               run_second_nic)

pytestmark = pytest.mark.kvm


def kite_argv(kite, name, append="", devices=()):
    argv = [kite, "run", "--kernel", guest_elf(name), "-m", "64M", "--console", "stdio",
            "--no-reboot"]
    if append:
        argv += ["--append", append]
    return argv + list(devices)


def test_virtio_blk_write_read_flush_id_discard_kite(kite, tmp_path):
    disk = tmp_path / "disk.raw"
    before = make_disk(disk)
    r = boot(kite_argv(kite, "virtio_blk", blk_append(),
                       ["--disk", f"{disk},format=raw,serial={SERIAL}"]))
    check_blk_rw(r, disk, before)


def test_virtio_blk_read_only_refuses_writes_kite(kite, tmp_path):
    disk = tmp_path / "disk.raw"
    before = make_disk(disk, ro=True)
    r = boot(kite_argv(kite, "virtio_blk", blk_append(ro=True),
                       ["--disk", f"{disk},format=raw,readonly=on,serial={SERIAL}"]))
    check_blk_ro(r, disk, before)


def test_virtio_hostile_driver_kite(kite, tmp_path):
    """Issue 3: every malformed chain ends in an error status or NEEDS_RESET (strict=1), guest
    RAM stays untouched where a wrapped buffer would land, and kite (ASan build included)
    survives to the guest's power-off."""
    disk = tmp_path / "disk.raw"
    before = make_disk(disk)
    r = boot(kite_argv(kite, "virtio_hostile", "strict=1", ["--disk", f"{disk},format=raw"]))
    check_hostile(r, disk, before, strict=True)


def test_pci_bus_ecam_and_bars_kite(kite, tmp_path):
    """Host bridge, a disk and an rng: three functions, BARs placed by the program (kite runs
    no firmware), ECAM at the MCFG's address agreeing with 0xCF8/0xCFC."""
    disk = tmp_path / "disk.raw"
    make_disk(disk)
    r = boot(kite_argv(kite, "pci_bus", "functions=3", ["--disk", f"{disk},format=raw", "--rng"]))
    r.assert_all_passed(PCI_EXPECTED + ["3 functions on bus 0"])
    assert "PASS: MCFG: segment 0 from bus 0, ECAM at 0xe0000000" in r.lines, r.output()


def test_virtio_rng_returns_bytes_kite(kite):
    boot(kite_argv(kite, "virtio_rng", devices=["--rng"])).assert_all_passed(RNG_EXPECTED)


def test_virtio_msix_interrupt_for_used_ring_kite(kite):
    boot(kite_argv(kite, "virtio_msix", devices=["--rng"])).assert_all_passed(MSIX_EXPECTED)


def test_virtio_net_dhcp_dns_tcp_hostfwd_kite(kite):
    run_net(lambda host_port, host_udp_port, append:
            kite_argv(kite, "virtio_net", append,
                      ["--net", f"user,hostfwd=tcp:127.0.0.1:{host_port}-:{ECHO_PORT},"
                                f"hostfwd=udp:127.0.0.1:{host_udp_port}-:{UDP_PORT}"]))


def test_virtio_net_second_nic_on_10_0_3_kite(kite):
    """README: the second card's NAT is 10.0.3.0/24."""
    run_second_nic(lambda append: kite_argv(kite, "virtio_net", append,
                                            ["--net", "user", "--net", "user"]))


def test_virtio_net_user_addresses_kite(kite):
    run_custom_net(lambda append: kite_argv(kite, "virtio_net", append,
                                            ["--net", f"user,{CUSTOM_NET}"]))


def test_virtio_net_user_restrict_kite(kite):
    run_restricted(lambda host_port, append: kite_argv(
        kite, "virtio_net", append,
        ["--net", f"user,restrict=on,hostfwd=tcp:127.0.0.1:{host_port}-:{ECHO_PORT}"]))


def kite_stats(stderr):
    """`kite run --stats`: KVM exits by reason, and where notifications and MSI-X went."""
    s = {"ioeventfd": 0, "irqfd": 0, "signal_msi": 0}
    for line in stderr.splitlines():
        m = re.match(r"kite: stats:   (\w+) +(\d+)$", line)
        if m:
            s[m.group(1)] = int(m.group(2))
        m = re.match(r"kite: stats: virtio notifications through ioeventfd: (\d+)$", line)
        if m:
            s["ioeventfd"] = int(m.group(1))
        m = re.match(r"kite: stats: MSI-X messages through irqfd: (\d+), "
                     r"through KVM_SIGNAL_MSI: (\d+)$", line)
        if m:
            s["irqfd"], s["signal_msi"] = int(m.group(1)), int(m.group(2))
    return s


ROUNDS = 50
MOVE_TO = 0xD0000000  # inside kite's PCI MMIO window, above the BARs it pre-assigns


def test_virtio_notifications_do_not_exit_to_kite(kite):
    """ioeventfd: the rng's 2 + 2 x ROUNDS queue notifications reach the device through
    eventfds, also after the guest moved BAR0 (the ioeventfds follow it), and add no MMIO
    exits to those of the same program's setup alone (where each kick used to be one)."""
    base = boot(kite_argv(kite, "virtio_rng", devices=["--rng", "--stats"]))
    base.assert_all_passed(RNG_EXPECTED)
    r = boot(kite_argv(kite, "virtio_rng", f"rounds={ROUNDS} move={MOVE_TO}",
                       ["--rng", "--stats"]), timeout=300)
    r.assert_all_passed(RNG_EXPECTED + [f"{ROUNDS} more requests answered",
                                        "BAR with the virtio structures moved to 0xd0000000",
                                        f"after the move: {ROUNDS} more requests answered"])
    s, s0 = kite_stats(r.stderr), kite_stats(base.stderr)
    kicks = 2 + 2 * ROUNDS
    assert s["ioeventfd"] == kicks, r.stderr
    assert s0["ioeventfd"] == 2, base.stderr
    # the setup's accesses to the common configuration are the same in both runs
    assert s.get("MMIO", 0) - s0.get("MMIO", 0) < kicks // 10, (base.stderr, r.stderr)


def test_virtio_blk_kicks_are_counted_kite(kite, tmp_path):
    """--stats counts the disk's kicks too, which KVM signals straight to the disk's own
    eventfd: virtio_blk's 9 requests (read, write, read back, flush, get-id, discard, three
    past the end) are 9 kicks, each one request."""
    disk = tmp_path / "disk.raw"
    before = make_disk(disk)
    r = boot(kite_argv(kite, "virtio_blk", blk_append(),
                       ["--disk", f"{disk},format=raw,serial={SERIAL}", "--stats"]))
    check_blk_rw(r, disk, before)
    assert kite_stats(r.stderr)["ioeventfd"] == 9, r.stderr


def test_virtio_msix_goes_through_an_irqfd_kite(kite):
    """irqfd: the one MSI-X message of virtio_msix is a write to the vector's eventfd, routed
    by an MSI route at GSI 24 and up, not a KVM_SIGNAL_MSI."""
    r = boot(kite_argv(kite, "virtio_msix", devices=["--rng", "--stats"]))
    r.assert_all_passed(MSIX_EXPECTED)
    s = kite_stats(r.stderr)
    assert (s["irqfd"], s["signal_msi"]) == (1, 0), r.stderr
