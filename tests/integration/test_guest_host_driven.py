"""Guest programs the host drives while they run, under QEMU as the referee: `powerbutton`
takes QEMU's system_powerdown on the SCI and powers off; `balloon` follows QEMU's balloon
target. kite runs the same programs through its machine verbs (kite shutdown, kite setmem) in
test_machines.py."""
import json
import os
import re
import socket
import subprocess
import tempfile
import threading
import time

import pytest

from test_guest_programs import HAVE_KVM, QEMU, SUMMARY_RE, guest_elf


class Qemu:
    """QEMU booting a guest program: its COM1 lines, and QMP on a unix socket."""

    def __init__(self, name, mem="64M", extra=()):
        if QEMU is None:
            pytest.fail("qemu-system-x86_64 is missing: run scripts/setup")
        self.dir = tempfile.mkdtemp(prefix="qm")
        qmp = os.path.join(self.dir, "qmp")
        self.p = subprocess.Popen(
            [QEMU, "-M", "q35", "-accel", "kvm" if HAVE_KVM else "tcg", "-m", mem,
             "-nodefaults", "-no-user-config", "-display", "none", "-serial", "stdio",
             "-no-reboot", "-kernel", guest_elf(name), "-qmp", f"unix:{qmp},server=on,wait=off",
             *extra],
            stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        self.lines = []
        self.lock = threading.Lock()
        threading.Thread(target=self._read, daemon=True).start()
        self.wait_line(lambda l: l.startswith("GUEST "), 60)
        self.qmp = socket.socket(socket.AF_UNIX)
        self.qmp.settimeout(30)
        self.qmp.connect(qmp)
        self.qf = self.qmp.makefile("rwb")
        json.loads(self.qf.readline())  # greeting
        self.execute("qmp_capabilities")

    def _read(self):
        for raw in self.p.stdout:
            with self.lock:
                self.lines.append(raw.decode("utf-8", "replace").rstrip("\r\n"))

    def execute(self, cmd, **args):
        self.qf.write(json.dumps({"execute": cmd, "arguments": args}).encode() + b"\n")
        self.qf.flush()
        while True:
            reply = json.loads(self.qf.readline())
            if "event" not in reply:
                assert "return" in reply, reply
                return reply["return"]

    def output(self):
        with self.lock:
            return "\n".join(self.lines)

    def wait_line(self, pred, timeout=60):
        deadline = time.monotonic() + timeout
        while True:
            with self.lock:
                for l in self.lines:
                    if pred(l):
                        return l
            assert time.monotonic() < deadline, f"guest line not seen:\n{self.output()}"
            assert self.p.poll() is None, f"QEMU ended:\n{self.output()}"
            time.sleep(0.05)

    def finish(self, timeout=60):
        rc = self.p.wait(timeout=timeout)
        self.qmp.close()
        self.p.stderr.close()
        return rc

    def kill(self):
        if self.p.poll() is None:
            self.p.kill()
            self.p.wait()


@pytest.fixture
def qemus():
    started = []
    yield lambda *a, **kw: started.append(Qemu(*a, **kw)) or started[-1]
    for q in started:
        q.kill()


def summary(q):
    for l in q.lines:
        m = SUMMARY_RE.match(l)
        if m:
            return int(m.group(1)), int(m.group(2))
    return None


def test_power_button_reaches_the_guest_qemu(qemus):
    q = qemus("powerbutton")
    q.wait_line(lambda l: l.startswith("READY: power button"))
    q.execute("system_powerdown")
    assert q.finish() == 0, q.output()
    out = q.output()
    assert summary(q) == (5, 0), out
    for line in ("PASS: ACPI mode: SCI_EN set in PM1a_CNT",
                 "PASS: power button pressed: SCI delivered",
                 "PASS: one SCI for one press (1)",
                 "PASS: PWRBTN_STS cleared by writing 1"):
        assert line in out, out
    assert "fallbacks" not in out, out


BALLOON_RE = re.compile(r"^BALLOON: target=(\d+) actual=(\d+) usable=(\d+)$")


def test_balloon_follows_the_target_qemu(qemus):
    q = qemus("balloon", mem="256M", extra=["-device", "virtio-balloon-pci"])
    q.wait_line(lambda l: l == "READY: balloon")

    def states(n):
        """The guest's first n BALLOON lines, once it has printed them."""
        q.wait_line(lambda l: len([x for x in list(q.lines) if BALLOON_RE.match(x)]) >= n)
        return [tuple(map(int, m.groups())) for m in map(BALLOON_RE.match, list(q.lines)) if m]

    full = states(1)[0]
    assert full[:2] == (0, 0) and 250 <= full[2] <= 256, q.output()
    q.execute("balloon", value=128 << 20)
    half = states(2)[1]
    assert half[:2] == (32768, 32768) and 122 <= half[2] <= 128, q.output()
    deadline = time.monotonic() + 30
    while q.execute("query-balloon")["actual"] != 128 << 20:
        assert time.monotonic() < deadline, q.output()
        time.sleep(0.1)
    q.execute("balloon", value=256 << 20)
    assert states(3)[2] == full, q.output()
    q.execute("system_powerdown")
    assert q.finish() == 0, q.output()
    assert summary(q) == (2, 0), q.output()
