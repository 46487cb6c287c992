"""The test exit device (issue 25): QEMU's isa-debug-exit semantics behind kite run's
--exit-device port=N. The guest program `exit_device` (tests/guests/exit_device.c) writes
code=C to the port; the VMM exits with (C << 1) | 1 (its low 8 bits), on QEMU as the referee and
on kite (marked kvm). Option refusals and the machine definition's field run anywhere."""
import json

import pytest

from conftest import run
from test_guest_programs import boot, guest_elf, qemu_argv
from test_machines import Machines

# (code, width, port): the exit status is ((code << 1) | 1) & 0xff.
CASES = [(42, 4, 0xf4), (0, 4, 0xf4), (200, 4, 0xf4), (0x12345678, 4, 0xf4), (42, 1, 0xf4),
         (7, 2, 0x501)]


def status(code):
    return ((code << 1) | 1) & 0xff


def append(code, width, port):
    return f"code={code} width={width} port={port}"


def check_exit(r, code, width, port):
    out = r.output()
    assert not r.killed, out
    assert r.failed == [], out
    assert r.summary is None, out  # the write ended the VM: the program never got further
    assert f"exit device at {port:#x} reads as zeros" in r.passed, out
    assert f"guest: writing {code} ({width} bytes) to port {port:#x}" in r.lines, out
    assert r.returncode == status(code), out


@pytest.mark.parametrize("code,width,port", CASES)
def test_exit_code_qemu(code, width, port):
    extra = ["-device", f"isa-debug-exit,iobase={port:#x},iosize=4"]
    r = boot(qemu_argv("exit_device", append(code, width, port), extra=extra))
    check_exit(r, code, width, port)


def kite_argv(kite, app, *opts, kernel=None):
    return [kite, "run", "--kernel", kernel or guest_elf("exit_device"), "-m", "64M",
            "--console", "stdio", "--no-reboot", "--append", app, *opts]


@pytest.mark.kvm
@pytest.mark.parametrize("code,width,port", CASES)
def test_exit_code_kite(kite, code, width, port):
    r = boot(kite_argv(kite, append(code, width, port), "--exit-device", f"port={port:#x}"))
    check_exit(r, code, width, port)


@pytest.mark.kvm
def test_exit_code_from_a_multiboot_kernel_kite(kite):
    kernel = guest_elf("exit_device").replace(".elf", ".mb.elf")
    r = boot(kite_argv(kite, append(21, 4, 0xf4), "--exit-device", "port=244", kernel=kernel))
    check_exit(r, 21, 4, 0xf4)


@pytest.mark.kvm
def test_without_the_device_the_write_is_dropped_kite(kite):
    """Off by default: the port reads all ones, the write goes nowhere, and the program ends
    through ACPI power-off (exit 0) reporting both."""
    r = boot(kite_argv(kite, append(42, 4, 0xf4)))
    assert not r.killed and r.returncode == 0, r.output()
    assert sorted(r.failed) == ["exit device at 0xf4 reads as zeros",
                                "the VM ended at the exit device's write"], r.output()


@pytest.mark.kvm
def test_a_port_another_device_has_is_refused_kite(kite):
    r = run(kite_argv(kite, "x", "--exit-device", "port=0x3f8"))
    assert r.returncode == 1, r.stderr
    assert "kite: error: device exit-device: address range 0x3f8+0x4 overlaps serial" \
        in r.stderr, r.stderr


@pytest.mark.parametrize("value,message", [
    ("0xf4", "'0xf4' is not port=N or off"),
    ("port=", "port '' is not an I/O port from 0 to 0xfffc"),
    ("port=0xfffd", "port '0xfffd' is not an I/O port"),
    ("port=-1", "port '-1' is not an I/O port"),
    ("port=12x", "port '12x' is not an I/O port"),
])
def test_bad_exit_device_values_are_refused(kite, value, message):
    r = run(kite_argv(kite, "x", "--exit-device", value))
    assert r.returncode == 1, r.stderr
    assert r.stderr.startswith(f"kite: error: --exit-device: {message}"), r.stderr


def test_a_definition_keeps_the_exit_device(kite):
    """kite create stores it as "exit_device": "port=0xf4"; a machine without one has no field
    (definitions written before it read the same)."""
    m = Machines(kite)
    try:
        m.create("dbg", "--exit-device", "port=244")
        assert json.loads(m.ok("dumpjson", "dbg").stdout)["exit_device"] == "port=0xf4"
        m.create("plain")
        assert "exit_device" not in json.loads(m.ok("dumpjson", "plain").stdout)
    finally:
        m.cleanup()
