"""Migration (issue 17) between two state directories on this machine: `kite migrate` at the
source, `kite migrate-incoming` at the destination. The VMM is `kite _fake-run` (KITE_RUNNER),
which migrates with the real engine over a RAM buffer it keeps a pattern in and prints the
CRC-32 of (at the switch, and once restored at the destination), so these run without
/dev/kvm. test_migrate_kvm.py migrates real guests."""
import os
import re
import shutil
import socket
import struct
import subprocess
import tempfile
import time
import zlib

import pytest

from conftest import run
from savefile_format import build_record

U8, U32, U64, BYTES = 1, 3, 4, 5


class Host:
    """One side: a state directory of its own, machines run by the fake VMM."""

    def __init__(self, kite, base, name):
        self.kite = kite
        self.state = os.path.join(base, name)
        self.run_dir = os.path.join(self.state, "run")
        self.env = dict(os.environ)
        self.env.pop("KITE_RUNTIME_DIR", None)
        self.env["KITE_STATE_DIR"] = self.state
        self.env["KITE_RUNNER"] = f"{kite} _fake-run"
        self.env.setdefault("ASAN_OPTIONS", "detect_leaks=1:abort_on_error=0")
        self.env.setdefault("UBSAN_OPTIONS", "print_stacktrace=1:halt_on_error=1")

    def __call__(self, *args, env=None, **kw):
        e = dict(self.env)
        e.update(env or {})
        return run([self.kite, *args], env=e, **kw)

    def ok(self, *args, **kw):
        r = self(*args, **kw)
        assert r.returncode == 0, f"kite {' '.join(args)}: rc={r.returncode}\n{r.stdout}\n{r.stderr}"
        return r

    def state_of(self, name):
        r = self("domstate", name)
        return r.stdout.strip() if r.returncode == 0 else "undefined"

    def console(self, name):
        path = os.path.join(self.run_dir, f"{name}.console")
        return open(path).read() if os.path.exists(path) else ""

    def console_until(self, name, text):
        """The console once it holds `text` (the supervisor copies it as it comes; 60 s is a
        hang detector)."""
        deadline = time.monotonic() + 60
        while text not in self.console(name) and time.monotonic() < deadline:
            time.sleep(0.02)
        return self.console(name)

    def incoming(self, dest, env=None):
        """`kite migrate-incoming DEST` in the background, once it listens."""
        e = dict(self.env)
        e.update(env or {})
        p = subprocess.Popen([self.kite, "migrate-incoming", dest], env=e,
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        line = p.stdout.readline()
        assert line.startswith("Waiting for a migration on"), (line, p.stderr.read())
        return p

    def leftovers(self):
        return [n for n in os.listdir(self.state) if ".migrate." in n] \
            if os.path.isdir(self.state) else []


@pytest.fixture
def hosts(kite):
    base = tempfile.mkdtemp(prefix="kmig", dir=tempfile.gettempdir())
    a, b = Host(kite, base, "a"), Host(kite, base, "b")
    kernel = os.path.join(base, "vmlinuz")
    with open(kernel, "wb") as f:
        f.write(b"the fake runner only reads it")
    disk = os.path.join(base, "disk.raw")
    with open(disk, "wb") as f:
        f.truncate(1 << 20)
    yield a, b, base, kernel, disk
    for h in (a, b):
        if os.path.exists(os.path.join(h.run_dir, "m1.pid")):
            h("destroy", "m1")
    shutil.rmtree(base, ignore_errors=True)


def release_only(kite, why):
    """Keeps `make check` short: the ASan build runs the tests that reach other code."""
    if "/san/" in kite:
        pytest.skip(f"release build only: {why}")


def crc_line(text, when):
    m = re.search(r"RAM crc32 ([0-9a-f]{8}) " + when, text)
    return m and m.group(1)


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.parametrize("transport", ["unix", "tcp"])
def test_migrate_moves_the_running_machine(kite, hosts, transport):
    if transport == "tcp":
        release_only(kite, "the ASan build migrates over unix:, the same code past connect")
    a, b, base, kernel, disk = hosts
    a.ok("create", "m1", "--kernel", kernel, "-m", "64M", "--disk", f"{disk},format=raw")
    a.ok("start", "m1")
    dest = f"unix:{base}/mig.sock" if transport == "unix" else f"tcp:127.0.0.1:{free_port()}"
    inc = b.incoming(dest)
    extra = ["--undefinesource"] if transport == "tcp" else []
    r = a.ok("migrate", "--live", "--max-downtime", "100", *extra, "m1", dest)
    assert f"Migration: machine 'm1' moved to {dest}" in r.stdout
    out, err = inc.communicate(timeout=60)
    assert inc.returncode == 0, (out, err)
    assert "Machine 'm1' migrated here, running" in out
    # The RAM the destination resumed is the RAM the source had when it stopped.
    sent = crc_line(a.console_until("m1", "at the switch"), "at the switch")
    got = crc_line(b.console_until("m1", "RAM crc32"), "restored")
    assert sent and got == sent, (a.console("m1"), b.console("m1"))
    assert b.state_of("m1") == "running"
    assert a.state_of("m1") == ("undefined" if extra else "shut off")
    assert b.leftovers() == []
    # The destination's VMM holds the disk now: a second writer is refused.
    q = run(["qemu-io", "-f", "raw", "-c", "write 0 512", disk])
    assert q.returncode != 0 and 'Failed to get "write" lock' in q.stderr, q.stderr
    b.ok("destroy", "m1")


def test_destination_that_refuses_leaves_the_source_running(kite, hosts):
    release_only(kite, "the ASan build's refusals are test_hostile_streams_are_refused")
    a, b, base, kernel, disk = hosts
    a.ok("create", "m1", "--kernel", kernel, "-m", "64M", "--disk", f"{disk},format=raw")
    a.ok("start", "m1")
    # The destination already runs a machine of that name (with no disk: no lock conflict).
    b.ok("create", "m1", "--kernel", kernel, "-m", "32M")
    b.ok("start", "m1")
    dest = f"unix:{base}/mig.sock"
    inc = b.incoming(dest)
    r = a("migrate", "m1", dest)
    assert r.returncode == 1, r.stdout
    assert "kite: error: machine m1: migration failed: migration: the destination refused: " \
           "machine m1 is already running here" in r.stderr, r.stderr
    out, err = inc.communicate(timeout=60)
    assert inc.returncode == 1 and "kite: error: machine m1 is already running here" in err
    assert a.state_of("m1") == "running" and b.state_of("m1") == "running"
    b.ok("destroy", "m1")
    b.ok("undefine", "m1")
    # The destination has everything but its VMM fails to start: after the switch began, the
    # source takes its disk's lock back and runs on.
    inc = b.incoming(dest, env={"KITE_FAKE_FAIL": "no room for it here"})
    r = a("migrate", "--live", "m1", dest)
    assert r.returncode == 1 and "no room for it here" in r.stderr, r.stderr
    out, err = inc.communicate(timeout=60)
    assert inc.returncode == 1, (out, err)
    assert "running on after the migration failed" in a.console_until(
        "m1", "running on after the migration failed")
    assert a.state_of("m1") == "running" and b.state_of("m1") == "undefined"
    q = run(["qemu-io", "-f", "raw", "-c", "write 0 512", disk])
    assert q.returncode != 0 and 'Failed to get "write" lock' in q.stderr, q.stderr
    # And a migration that cannot even connect.
    r = a("migrate", "m1", f"unix:{base}/nobody.sock")
    assert r.returncode == 1 and "cannot connect" in r.stderr, r.stderr
    assert a.state_of("m1") == "running"


def start_slow_migration(a, b, base, kernel, disk):
    """A source guest that dirties pages faster than the rounds converge (30 rounds of at
    least 100 ms), and `kite migrate` of it running in the background."""
    a.ok("create", "m1", "--kernel", kernel, "-m", "64M", "--disk", f"{disk},format=raw")
    a.ok("start", "m1", env={"KITE_FAKE_DIRTY_PAGES": "4096"})
    dest = f"unix:{base}/mig.sock"
    inc = b.incoming(dest)
    mig = subprocess.Popen([a.kite, "migrate", "--live", "--max-downtime", "1", "m1", dest], env=a.env, stdout=subprocess.PIPE,
                           stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 120
    while True:
        info = a.ok("domjobinfo", "m1").stdout
        m = re.search(r"Iteration:\s+(\d+)", info)
        if m and int(m.group(1)) >= 2:
            break
        assert time.monotonic() < deadline, info
        time.sleep(0.05)
    assert re.search(r"Job type:\s+Unbounded", info), info
    for field in ("Data processed", "Data remaining", "Dirty rate", "Expected downtime"):
        assert field + ":" in info, info
    return inc, mig


def test_broken_connection_leaves_the_source_running(hosts):
    a, b, base, kernel, disk = hosts
    inc, mig = start_slow_migration(a, b, base, kernel, disk)
    inc.kill()  # the destination dies mid-stream
    inc.wait(timeout=30)
    out, err = mig.communicate(timeout=120)
    assert mig.returncode == 1, (out, err)
    assert re.search(r"kite: error: machine m1: migration failed: .*(connection|went away)",
                     err), err
    assert a.state_of("m1") == "running"
    assert b.state_of("m1") == "undefined" and b.leftovers() == []
    # The source took its disk's lock back (it had not let it go): still refused to others.
    q = run(["qemu-io", "-f", "raw", "-c", "write 0 512", disk])
    assert q.returncode != 0 and 'Failed to get "write" lock' in q.stderr, q.stderr


def test_domjobabort_cancels_and_the_destination_cleans_up(hosts):
    a, b, base, kernel, disk = hosts
    inc, mig = start_slow_migration(a, b, base, kernel, disk)
    a.ok("domjobabort", "m1")
    out, err = mig.communicate(timeout=120)
    assert mig.returncode == 1 and "migration cancelled" in err, err
    iout, ierr = inc.communicate(timeout=60)
    assert inc.returncode == 1 and "kite: error: migration stream: cut short" in ierr, ierr
    assert a.state_of("m1") == "running" and b.state_of("m1") == "undefined"
    assert b.leftovers() == []
    r = a("domjobabort", "m1")
    assert r.returncode == 1 and "no migration is running" in r.stderr


# ---- hostile streams ----

def frame(ftype, payload, crc=None):
    c = zlib.crc32(payload) if crc is None else crc
    return struct.pack("<II", ord(ftype), len(payload)) + payload + struct.pack("<I", c)


PRE = b"KITEMIGR" + struct.pack("<I", 1)


def feed(b, base, data):
    """Sends `data` to a migrate-incoming, then closes; its exit code and stderr."""
    path = f"{base}/hostile.sock"
    inc = b.incoming(f"unix:{path}")
    with socket.socket(socket.AF_UNIX) as s:
        s.connect(path)
        try:
            s.sendall(data)
            s.shutdown(socket.SHUT_WR)
            while s.recv(4096):
                pass
        except (BrokenPipeError, ConnectionResetError):
            pass
    out, err = inc.communicate(timeout=60)
    return inc.returncode, err


def test_hostile_streams_are_refused(hosts):
    a, b, base, kernel, disk = hosts
    # The definition in the stream, as `kite dumpjson` writes it, once it is known good.
    a.ok("create", "m2", "--kernel", kernel, "-m", "32M")
    good_def = a.ok("dumpjson", "m2").stdout.encode()

    def hdr(ram=32 << 20, page=4096, definition=good_def):
        return frame("H", build_record("migration", 1, [
            ("definition", BYTES, definition), ("ram_size", U64, struct.pack("<Q", ram)),
            ("page_size", U32, struct.pack("<I", page)), ("offline", U8, b"\0")]))

    page = bytes(range(256)) * 16
    cases = [
        (b"NOTMIGR!" + b"\0" * 4, "not a kite migration"),
        (b"KITEMIGR" + struct.pack("<I", 9), "migration stream version 9"),
        (PRE + hdr()[:-1] + b"\0", "corrupt (frame checksum)"),
        (PRE + struct.pack("<II", ord("H"), 0xffffffff), "too large"),
        (PRE + hdr(ram=64 << 20), "bytes of RAM for a machine of 32 MiB"),
        (PRE + hdr(definition=b"{not json"), "not valid JSON"),
        (PRE + hdr() + frame("P", struct.pack("<Q", 8191) + page * 2), "outside the guest"),
        (PRE + hdr() + frame("Z", struct.pack("<QQ", 1, 2 ** 64 - 1)), "outside the guest"),
        (PRE + hdr() + frame("S", b"KSR1garbage"), "device state is corrupt"),
        (PRE + hdr() + frame("E", b""), "unexpected frame"),
        (PRE + hdr() + frame("P", struct.pack("<Q", 0) + page)[:2000], "cut short"),
    ]
    for data, why in cases:
        rc, err = feed(b, base, data)
        assert rc == 1 and "kite: error: " in err and why in err, (why, err)
        assert "AddressSanitizer" not in err and "runtime error" not in err, err
        assert b.state_of("m2") == "undefined", why
        assert b.leftovers() == [], why


# ---- ssh:// (Debian's OpenSSH client, an sshd of the test's own on localhost) ----

@pytest.fixture
def sshd(kite, hosts):
    """An sshd on 127.0.0.1 that lets the test's key in, and KITE_SSH_COMMAND for it."""
    release_only(kite, "an ssh connection costs seconds here, and the ASan build's stream is "
                 "tested over unix:")
    if not os.path.exists("/usr/sbin/sshd") or not shutil.which("ssh"):
        pytest.skip("openssh-server is not installed (scripts/setup installs it)")
    if os.geteuid() != 0:
        pytest.skip("the test's sshd runs as root (its privilege separation needs it)")
    base = hosts[2]
    d = os.path.join(base, "ssh")
    os.mkdir(d, 0o700)
    for key in ("host", "user"):
        subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f",
                        os.path.join(d, key)], check=True)
    shutil.copy(os.path.join(d, "user.pub"), os.path.join(d, "authorized_keys"))
    port = free_port()
    with open(os.path.join(d, "sshd_config"), "w") as f:
        f.write(f"ListenAddress 127.0.0.1\nPort {port}\nHostKey {d}/host\n"
                f"AuthorizedKeysFile {d}/authorized_keys\nPidFile {d}/sshd.pid\n"
                "StrictModes no\nUsePAM no\nPermitRootLogin prohibit-password\n"
                "PasswordAuthentication no\nKbdInteractiveAuthentication no\n"
                f"SetEnv \"KITE_RUNNER={hosts[0].env['KITE_RUNNER']}\"\n")
    with open(os.path.join(d, "ssh_config"), "w") as f:
        f.write(f"Host 127.0.0.1\n  IdentityFile {d}/user\n  StrictHostKeyChecking no\n"
                "  UserKnownHostsFile /dev/null\n  LogLevel ERROR\n")
    os.makedirs("/run/sshd", exist_ok=True)
    proc = subprocess.Popen(["/usr/sbin/sshd", "-D", "-e", "-f", f"{d}/sshd_config"],
                            stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 30
    while True:
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                break
        assert proc.poll() is None and time.monotonic() < deadline, proc.stderr.read()
        time.sleep(0.05)
    yield port, f"ssh -F {d}/ssh_config"
    proc.terminate()
    proc.wait(30)


def test_migrate_over_ssh(hosts, sshd):
    a, b, base, kernel, disk = hosts
    port, ssh_command = sshd
    env = {"KITE_SSH_COMMAND": ssh_command, "KITE_REMOTE_KITE": a.kite}
    a.ok("create", "m1", "--kernel", kernel, "-m", "64M", "--disk", f"{disk},format=raw")
    a.ok("start", "m1", env=env)
    dest = f"ssh://root@127.0.0.1:{port}{b.state}"
    r = a.ok("migrate", "--live", "m1", dest)
    assert f"Migration: machine 'm1' moved to {dest}" in r.stdout
    sent = crc_line(a.console_until("m1", "at the switch"), "at the switch")
    got = crc_line(b.console_until("m1", "RAM crc32"), "restored")
    assert sent and got == sent, (a.console("m1"), b.console("m1"))
    assert a.state_of("m1") == "shut off" and b.state_of("m1") == "running"
    # A host that refuses the connection: the machine stays where it is.
    b.ok("destroy", "m1")
    b.ok("undefine", "m1")
    a.ok("start", "m1", env=env)
    r = a("migrate", "m1", f"ssh://root@127.0.0.1:{free_port()}{b.state}")
    assert r.returncode == 1 and "migration failed" in r.stderr, r.stderr
    assert a.state_of("m1") == "running"
