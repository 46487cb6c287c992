"""Guest test programs (tests/guests/, built into build/guests/*.elf) booted under QEMU as the
referee: each program prints PASS/FAIL lines and a SUMMARY, then powers off. The same programs
boot under kite in test_guest_programs_kite.py, which imports the helpers below."""
import os
import queue
import re
import shutil
import subprocess
import threading
import time

import pytest

from conftest import ROOT

GUEST_DIR = os.path.join(ROOT, "build", "guests")
HAVE_KVM = os.path.exists("/dev/kvm")
QEMU = shutil.which("qemu-system-x86_64")
SUMMARY_RE = re.compile(r"^SUMMARY: (\d+) passed, (\d+) failed$")


def guest_elf(name):
    path = os.path.join(GUEST_DIR, f"{name}.elf")
    if not os.path.exists(path):
        pytest.fail(f"{path} is missing: run make guests")
    return path


class GuestRun:
    """What one boot of a guest program printed and how the VMM ended."""

    def __init__(self, lines, returncode, stderr, killed):
        self.lines = lines
        self.returncode = returncode
        self.stderr = stderr
        self.killed = killed

    @property
    def passed(self):
        return [l[6:] for l in self.lines if l.startswith("PASS: ")]

    @property
    def failed(self):
        return [l[6:] for l in self.lines if l.startswith("FAIL: ")]

    @property
    def summary(self):
        for l in self.lines:
            m = SUMMARY_RE.match(l)
            if m:
                return int(m.group(1)), int(m.group(2))
        return None

    def count(self, line):
        return sum(1 for l in self.lines if l == line)

    def output(self):
        return "\n".join(self.lines) + f"\n--- exit {self.returncode}, stderr:\n{self.stderr}"

    def assert_cmdline(self, append):
        """The library prints the command line it found through start_info."""
        assert any(l.startswith("guest: start_info v") and f' cmdline "{append}" ' in l
                   for l in self.lines), self.output()

    def assert_all_passed(self, expected=()):
        """No FAIL line, a SUMMARY agreeing with the PASS lines, every EXPECTED test among them,
        and the VMM exited 0 on the guest's ACPI power-off."""
        out = self.output()
        assert not self.killed, f"guest did not finish:\n{out}"
        assert self.failed == [], out
        assert self.summary == (len(self.passed), 0), out
        for name in expected:
            assert any(p.startswith(name) for p in self.passed), f"no PASS: {name}\n{out}"
        assert self.returncode == 0, out


def boot(argv, replies=None, stop=None, timeout=90):
    """Runs a VMM whose stdio is the guest's COM1. REPLIES maps a line the guest prints to the
    text written to its input once that line appears; STOP(lines) true ends the run early
    (the VMM is killed). A run exceeding TIMEOUT seconds is killed too."""
    replies = dict(replies or {})
    proc = subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE)
    q = queue.Queue()

    def reader():
        for raw in proc.stdout:
            q.put(raw.decode("utf-8", "replace").rstrip("\r\n").replace("\r", ""))
        q.put(None)

    errbuf = []
    t_out = threading.Thread(target=reader, daemon=True)
    t_err = threading.Thread(target=lambda: errbuf.append(proc.stderr.read()), daemon=True)
    t_out.start()
    t_err.start()
    lines, killed = [], False
    end = time.monotonic() + timeout
    while True:
        left = end - time.monotonic()
        try:
            line = q.get(timeout=max(left, 0.01))
        except queue.Empty:
            killed = True
            break
        if line is None:
            break
        lines.append(line)
        if line in replies:
            proc.stdin.write(replies.pop(line).encode())
            proc.stdin.flush()
        if stop and stop(lines):
            killed = True
            break
    if killed:
        proc.kill()
    try:
        proc.stdin.close()
    except BrokenPipeError:
        pass
    rc = proc.wait(timeout=30)
    t_err.join(timeout=10)
    stderr = errbuf[0].decode("utf-8", "replace") if errbuf else ""
    return GuestRun(lines, rc, stderr, killed)


def qemu_argv(name, append="", mem="64M", cpus=1, reboot=False, extra=()):
    if QEMU is None:
        pytest.fail("qemu-system-x86_64 is missing: run scripts/setup")
    argv = [QEMU, "-M", "q35", "-accel", "kvm" if HAVE_KVM else "tcg", "-m", mem,
            "-smp", str(cpus), "-nodefaults", "-no-user-config", "-display", "none",
            "-serial", "stdio", "-kernel", guest_elf(name), "-append", append]
    if not reboot:
        argv.append("-no-reboot")
    return argv + list(extra)


SERIAL_LINES = ("hello kite 0123", "second line: IRQ 4 via the IOAPIC")
SERIAL_APPEND = "line1=" + SERIAL_LINES[0].replace(" ", "_") + " line2=" + \
    SERIAL_LINES[1].replace(" ", "_")


def serial_replies():
    # Spaces cannot be in a cmdline value, so the guest compares against the '_' spelling.
    return {"READY: polling": SERIAL_LINES[0].replace(" ", "_") + "\n",
            "READY: irq": SERIAL_LINES[1].replace(" ", "_") + "\n"}


def check_serial(r):
    r.assert_cmdline(SERIAL_APPEND)
    r.assert_all_passed(["serial output", "serial scratch register",
                         "serial input (polling): a line arrives",
                         "serial input (polling): line matches",
                         "serial input (irq): IRQ 4",
                         "serial input (irq): line matches"])
    charset = "".join(chr(c) for c in range(32, 127))
    assert f"charset: {charset}" in r.lines, r.output()
    for sent in SERIAL_LINES:
        assert "echo: " + sent.replace(" ", "_") in r.lines, r.output()


def test_serial_output_and_input_qemu():
    check_serial(boot(qemu_argv("serial", SERIAL_APPEND), serial_replies()))


MEMORY_EXPECTED = ["start_info v1 carries an e820 map", "e820 entries sorted",
                   "e820 RAM total", "e820 memory from 1 MiB ends at mem=",
                   "page allocator: two distinct", "page allocator: a freed page",
                   "ring 3 pattern write/read", "pattern test covered all RAM"]


def check_memory(r, mem):
    r.assert_all_passed(MEMORY_EXPECTED)
    kib = int(mem[:-1]) * 1024
    assert any(l.startswith("e820: ") and l.endswith(f"mem= {kib} KiB") for l in r.lines), \
        r.output()


@pytest.mark.parametrize("mem", ["64M", "200M"])
def test_memory_e820_and_patterns_qemu(mem):
    check_memory(boot(qemu_argv("memory", f"mem={mem}", mem=mem)), mem)


def check_smp(r, cpus):
    expected = [f"MADT lists cpus= {cpus} processors", "BSP APIC id 0 is in the MADT",
                f"all {cpus - 1} APs online ({cpus} CPUs)", "APIC ids of all CPUs are distinct"]
    expected += [f"AP with APIC id {i} started and reported its id" for i in range(1, cpus)]
    r.assert_all_passed(expected)
    online = sorted(l for l in r.lines if l.startswith("guest: AP with APIC id"))
    assert online == [f"guest: AP with APIC id {i} online" for i in range(1, cpus)], r.output()


@pytest.mark.parametrize("cpus", [1, 4])
def test_smp_every_cpu_reports_qemu(cpus):
    check_smp(boot(qemu_argv("smp", f"cpus={cpus}", cpus=cpus)), cpus)


def test_smp_wrong_count_is_reported_qemu():
    """The program itself catches a VMM giving fewer CPUs than asked for."""
    r = boot(qemu_argv("smp", "cpus=3", cpus=2))
    assert "MADT lists cpus= 3 processors" in r.failed, r.output()
    assert r.summary is not None and r.summary[1] == 1, r.output()


TIMER_EXPECTED = ["LAPIC timer periodic: 10 of 10", "LAPIC timer one-shot: one interrupt",
                  "PIT via IOAPIC (IRQ 0 -> GSI"]


def test_timer_interrupts_qemu():
    boot(qemu_argv("timer")).assert_all_passed(TIMER_EXPECTED)


POWEROFF_EXPECTED = ["ACPI RSDP found and checksummed", "FADT found and checksummed",
                     "DSDT \\_S5_ package gives SLP_TYPa", "MADT lists"]


def check_poweroff(r):
    """The VMM must stop on the ACPI S5 write itself: the library's last line is the write,
    with no fallback after it."""
    r.assert_all_passed(POWEROFF_EXPECTED)
    assert r.lines[-1].startswith("guest: power-off: "), r.output()
    assert not any("power-off failed" in l for l in r.lines), r.output()


@pytest.mark.parametrize("machine", ["q35", "microvm"])
def test_acpi_poweroff_exits_zero_qemu(machine):
    argv = qemu_argv("poweroff")
    argv[argv.index("q35")] = machine
    check_poweroff(boot(argv))


BANNER = "GUEST reset: start"


def check_reset_exits(r, method):
    """With no-reboot, the reset ends the VMM: exit 0, one boot, no SUMMARY (the program only
    reaches its summary when the reset did not happen)."""
    out = r.output()
    assert not r.killed, out
    assert r.count(BANNER) == 1, out
    assert f"reset: resetting through {method}" in r.lines, out
    assert r.summary is None and r.failed == [], out
    assert r.returncode == 0, out


def booted_twice(lines):
    return sum(1 for l in lines if l == BANNER) >= 2


@pytest.mark.parametrize("method", ["kbd", "cf9"])
def test_reset_with_no_reboot_exits_qemu(method):
    check_reset_exits(boot(qemu_argv("reset", f"method={method}")), method)


@pytest.mark.parametrize("method", ["kbd", "cf9"])
def test_reset_reboots_the_guest_qemu(method):
    r = boot(qemu_argv("reset", f"method={method}", reboot=True), stop=booted_twice,
             timeout=60)
    assert r.count(BANNER) >= 2, r.output()
    assert r.failed == [], r.output()


def test_triple_fault_resets_qemu(tmp_path):
    log = tmp_path / "qemu.log"
    r = boot(qemu_argv("triple_fault", extra=["-d", "cpu_reset", "-D", str(log)]))
    out = r.output()
    assert not r.killed, out
    assert r.lines[-1] == "triple_fault: loading an empty IDT and faulting", out
    assert r.summary is None, out
    assert r.returncode == 0, out  # -no-reboot turns the reset into an exit
    if not HAVE_KVM:  # TCG logs the shutdown cause; KVM does not
        assert "Triple fault" in log.read_text(), out


PVH_APPEND = "n=42 expect=a=b=c"
PVH_EXPECTED = ["EBX pointed at struct hvm_start_info", "CR0.PE set", "CR0 writable bits",
                "CR4 clear", "EFLAGS IF, TF, VM clear", "CS selects a flat 32-bit execute/read",
                "DS selects a flat", "ES selects a flat", "SS selects a flat",
                "start_info version", "command line arrives intact"]


def check_pvh(r):
    r.assert_cmdline(PVH_APPEND)
    r.assert_all_passed(PVH_EXPECTED)


@pytest.mark.parametrize("machine", ["q35", "microvm"])
def test_pvh_entry_state_qemu(machine):
    argv = qemu_argv("pvh", PVH_APPEND)
    argv[argv.index("q35")] = machine
    check_pvh(boot(argv))
