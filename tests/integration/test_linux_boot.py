"""The Debian kernel (make guest) under kite run: the banner and the e820 map the kernel prints
come from kite's boot parameters, and so does the command line (with the PVM defaults on a KVM-PVM
host, without them elsewhere). On a KVM-PVM host the stock kernel's early boot takes tens of
seconds (README "KVM-PVM hosts"), so this waits only for the lines it checks, with a generous
limit, and does not wait for userspace (the 'stock Linux on PVM' issue's test does)."""
import os
import re
import subprocess
import time

import pytest

from conftest import ROOT, linux_cmdline

GUEST = os.path.join(ROOT, "build", "guest")
KERNEL = os.path.join(GUEST, "vmlinuz")
INITRD = os.path.join(GUEST, "initramfs.cpio.gz")

pytestmark = pytest.mark.kvm

E820_RE = re.compile(r"BIOS-e820: \[mem 0x([0-9a-f]+)-0x([0-9a-f]+)\] (\w+)")


def boot_until(argv, done, timeout):
    """Runs kite until done(lines) is true or the time limit; returns the lines it printed."""
    p = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                         stderr=subprocess.STDOUT)
    os.set_blocking(p.stdout.fileno(), False)
    buf, deadline = b"", time.monotonic() + timeout
    try:
        while time.monotonic() < deadline and p.poll() is None:
            chunk = p.stdout.read()
            if chunk:
                buf += chunk
                if done(buf.decode(errors="replace").splitlines()):
                    break
            time.sleep(0.05)
    finally:
        p.kill()
        p.wait()
        rest = p.stdout.read()
        if rest:
            buf += rest
    return buf.decode(errors="replace").splitlines()


def test_banner_and_e820_come_from_kite(kite):
    if not os.path.exists(KERNEL):
        pytest.fail(f"{KERNEL} is missing: run make guest")
    append = "console=ttyS0 earlyprintk=serial,ttyS0"
    argv = [kite, "run", "--kernel", KERNEL, "--initrd", INITRD, "-m", "256M",
            "--append", append, "--console", "stdio"]
    # the whole line, type included: the last line read can be cut off where a chunk ended
    lines = boot_until(argv, lambda ls: any("BIOS-e820" in l and "0x000000000fffffff] usable" in l
                                            for l in ls), timeout=600)
    text = "\n".join(lines)
    assert any(l.startswith("Linux version ") or "] Linux version " in l for l in lines), text
    # The kernel's own record of its command line: the PVM defaults on a KVM-PVM host only.
    got = [re.sub(r"^.*Command line: ", "", l).strip() for l in lines if "] Command line: " in l
           or l.startswith("Command line: ")]
    assert got and set(got) == {linux_cmdline(append)}, text
    e820 = [(int(a, 16), int(b, 16), t) for a, b, t in E820_RE.findall(text)]
    assert e820 == [(0, 0x9fbff, "usable"), (0x9fc00, 0xfffff, "reserved"),
                    (0x100000, 0xfffffff, "usable")], text
