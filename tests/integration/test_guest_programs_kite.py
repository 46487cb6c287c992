"""The guest test programs of tests/guests/ booted by `kite run` (PVH entry, -m 64M), on the
release and the ASan+UBSan build. The same checks as under QEMU in test_guest_programs.py.
They need KVM: without /dev/kvm the whole module skips, saying so; with it, every test runs."""

import pytest

from test_guest_programs import (PVH_APPEND, SERIAL_APPEND, TIMER_EXPECTED, boot,
                                 booted_twice, check_memory, check_poweroff, check_pvh,
                                 check_reset_exits, check_serial, check_smp, guest_elf,
                                 serial_replies)

pytestmark = pytest.mark.kvm


def kite_argv(kite, name, append="", mem="64M", cpus=1, reboot=False):
    argv = [kite, "run", "--kernel", guest_elf(name), "-m", mem, "-c", str(cpus),
            "--console", "stdio"]
    if append:
        argv += ["--append", append]
    if not reboot:
        argv.append("--no-reboot")
    return argv


def test_pvh_entry_state_kite(kite):
    check_pvh(boot(kite_argv(kite, "pvh", PVH_APPEND)))


def test_serial_output_and_input_kite(kite):
    check_serial(boot(kite_argv(kite, "serial", SERIAL_APPEND), serial_replies()))


@pytest.mark.parametrize("mem", ["64M", "200M"])
def test_memory_e820_and_patterns_kite(kite, mem):
    check_memory(boot(kite_argv(kite, "memory", f"mem={mem}", mem=mem)), mem)


@pytest.mark.parametrize("cpus", [1, 4])
def test_smp_every_cpu_reports_kite(kite, cpus):
    check_smp(boot(kite_argv(kite, "smp", f"cpus={cpus}", cpus=cpus)), cpus)


def test_timer_interrupts_kite(kite):
    boot(kite_argv(kite, "timer")).assert_all_passed(TIMER_EXPECTED)


def test_acpi_poweroff_exits_zero_kite(kite):
    check_poweroff(boot(kite_argv(kite, "poweroff")))


def test_reset_with_no_reboot_exits_kite(kite):
    check_reset_exits(boot(kite_argv(kite, "reset", "method=kbd")), "kbd")


def test_reset_reboots_the_guest_kite(kite):
    r = boot(kite_argv(kite, "reset", "method=kbd", reboot=True), stop=booted_twice, timeout=60)
    assert r.count("GUEST reset: start") >= 2, r.output()
    assert r.failed == [], r.output()


def test_triple_fault_is_a_crash_naming_the_vcpu_kite(kite):
    r = boot(kite_argv(kite, "triple_fault"))
    out = r.output()
    assert not r.killed, out
    assert r.lines[-1] == "triple_fault: loading an empty IDT and faulting", out
    assert r.returncode == 2, out  # README: 2 = guest crashed
    assert "vCPU 0" in r.stderr and "triple fault" in r.stderr, out
