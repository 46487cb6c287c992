"""QEMU's pc-testdev (issue 25) behind kite run --testdev. The guest program `testdev`
(tests/guests/testdev.c) checks the latch at 0xe0/0xe8, raises an IOAPIC interrupt through
port 0x2000 + n (edge and level) and sees it arrive, flushes a page through 0xe4 and checks the
64 KiB MMIO window at 0xff000000: on QEMU (-device pc-testdev) as the referee and on kite (marked
kvm). The definition's field runs anywhere; the state record's round trip is a unit test
(tests/unit/test_state.c)."""
import json

import pytest

from test_guest_programs import boot, guest_elf, qemu_argv
from test_machines import Machines

EXPECTED = ["latch reads back 0x12345678", "latch reads by byte and word from each port",
            "a byte write replaces its byte", "unaligned accesses are dropped, read as 0",
            "a word write replaces two bytes", "0xe8 reads the same latch",
            "a byte written at 0xeb is the latch's top",
            "IRQ line 10 (edge) raised by port 0x200a: one interrupt",
            "IRQ line 11 (level) raised by port 0x200b, lowered by its handler: one interrupt",
            "IRQ line ports read as 0", "a flushed page keeps its bytes and takes writes",
            "the flush port reads as 0", "MMIO window reads zeros at first",
            "MMIO window reads back 1-, 2-, 4- and 8-byte writes, first and last byte",
            "MMIO window bytes merge across widths"]


def test_testdev_qemu():
    boot(qemu_argv("testdev", extra=["-device", "pc-testdev"])).assert_all_passed(EXPECTED)


def test_without_the_device_the_program_fails_qemu():
    """The program can tell: with no device the latch reads all ones and no interrupt comes."""
    r = boot(qemu_argv("testdev", "irq_ms=200"))
    assert "latch reads back 0x12345678 (0xffffffff)" in r.failed, r.output()
    assert any(f.startswith("IRQ line 10 (edge)") for f in r.failed), r.output()


@pytest.mark.kvm
def test_testdev_kite(kite):
    r = boot([kite, "run", "--kernel", guest_elf("testdev"), "-m", "64M", "--console",
              "stdio", "--no-reboot", "--testdev"])
    r.assert_all_passed(EXPECTED)


def test_a_definition_keeps_the_testdev(kite):
    m = Machines(kite)
    try:
        m.create("td", "--testdev")
        assert json.loads(m.ok("dumpjson", "td").stdout)["testdev"] is True
        m.create("plain", "--testdev=off")
        assert "testdev" not in json.loads(m.ok("dumpjson", "plain").stdout)
    finally:
        m.cleanup()
