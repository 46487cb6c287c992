"""Machine snapshots (issue 16): kite snapshot-create-as, -list, -current, -info, -dumpjson,
-delete, -revert. The host tests run the verbs end to end with the stand-in VMM
(`kite _fake-run`), which takes the disks' snapshots through the same code as the real one
and stores a real (empty) save file as the VM state; qemu-img is the referee of the images.
The kvm test at the end snapshots and reverts the `state` guest program under KVM."""
import json
import os
import re
import struct
import subprocess
import time

import pytest

from conftest import run
from test_machines import Machines

CLUSTER = 65536


def qemu_img(*args):
    r = subprocess.run(["qemu-img", *args], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, (args, r.stdout, r.stderr)
    return r.stdout


def qemu_io(image, cmd):
    qemu_img_free = subprocess.run(["qemu-io", "-f", "qcow2", "-c", cmd, image],
                                   capture_output=True, text=True, timeout=60)
    assert qemu_img_free.returncode == 0, qemu_img_free.stderr
    assert "error" not in qemu_img_free.stdout.lower(), qemu_img_free.stdout


def snapshot_table(image):
    """qemu-img's own view: {tag: (vm size text, vm clock text)}."""
    out = qemu_img("snapshot", "-U", "-l", image)
    rows = {}
    for line in out.splitlines()[2:]:
        w = line.split()
        # ID TAG VM-SIZE(2 words) DATE(2) VM-CLOCK ICOUNT
        rows[w[1]] = (" ".join(w[2:4]), w[6])
    return rows


def disk_bytes(image, snapshot=None, tmp=None):
    out = os.path.join(tmp, "view.raw")
    args = ["convert", "-U", "-f", "qcow2", "-O", "raw"]
    if snapshot:
        args += ["-l", f"snapshot.name={snapshot}"]
    qemu_img(*args, image, out)
    with open(out, "rb") as f:
        return f.read()


@pytest.fixture
def m(kite):
    machines = Machines(kite)
    yield machines
    machines.cleanup()


def qcow2(m, name, size="4M"):
    path = os.path.join(m.dir, name)
    qemu_img("create", "-q", "-f", "qcow2", path, size)
    return path


def test_snapshots_of_a_running_machine_with_the_fake_vmm(m, tmp_path):
    """Create on a running machine stores the VM state in the qcow2 image (qemu-img lists it
    with its VM SIZE), list/info/current/dumpjson tell what virsh tells, revert brings the
    disk back byte for byte and resumes the saved state, delete removes it everywhere."""
    disk = qcow2(m, "a.qcow2")
    qemu_io(disk, "write -P 0x11 0 64k")
    m.create("sn", "-m", "64M", "--disk", disk)
    m.ok("start", "sn")
    r = m.ok("snapshot-create-as", "sn", "s1", "--description", "before the change")
    assert r.stdout == "Domain snapshot s1 created\n"
    m.ok("snapshot-create-as", "sn", "s2")
    table = snapshot_table(disk)
    assert set(table) == {"s1", "s2"}
    # The save file of a 64 MiB machine: the VM SIZE qemu-img prints is its length.
    assert table["s1"][0] == "64 MiB", table
    lines = m.ok("snapshot-list", "sn").stdout.splitlines()
    assert lines[0].split() == ["Name", "Creation", "Time", "State"]
    assert re.fullmatch(r"-+", lines[1])
    assert [l.split()[0] for l in lines[2:]] == ["s1", "s2"]
    assert all(l.split()[-1] == "running" for l in lines[2:])
    assert m.ok("snapshot-list", "sn", "--tree").stdout == "s1\n  +- s2\n"
    assert m.ok("snapshot-current", "sn", "--name").stdout == "s2\n"
    info = m.ok("snapshot-info", "sn", "s1").stdout
    for want in (r"Name: +s1", r"Domain: +sn", r"Current: +no", r"State: +running",
                 r"Parent: +-", r"Children: +1", r"Descendants: +1", r"Memory: +yes"):
        assert re.search(want, info), (want, info)
    meta = json.loads(m.ok("snapshot-dumpjson", "sn", "s2").stdout)
    assert meta["parent"] == "s1" and meta["memory"] and meta["vmstate_disk"] == "vda"
    assert meta["disks"] == [{"target": "vda", "path": disk, "snapshot": "internal"}]
    assert json.loads(m.ok("snapshot-dumpjson", "sn", "s1").stdout)["description"] == \
        "before the change"

    m.ok("destroy", "sn")
    before = disk_bytes(disk, tmp=str(tmp_path))
    qemu_io(disk, "write -P 0x22 0 128k")
    r = m.ok("snapshot-revert", "sn", "s1")
    assert r.stdout == "Domain 'sn' reverted to snapshot s1\n"
    assert m.state_of("sn") == "running"  # resumed from the snapshot's state
    assert disk_bytes(disk, tmp=str(tmp_path)) == before
    assert m.ok("snapshot-current", "sn", "--name").stdout == "s1\n"
    # Delete on the running machine: its VMM drops it from the disk; s2 now hangs off nothing.
    assert m.ok("snapshot-delete", "sn", "s1").stdout == "Domain snapshot s1 deleted\n"
    assert set(snapshot_table(disk)) == {"s2"}
    assert m.ok("snapshot-list", "sn", "--tree").stdout == "s2\n"
    m.ok("destroy", "sn")
    out = qemu_img("check", disk)
    assert "No errors were found on the image." in out, out


def test_stopped_machine_takes_disk_only_snapshots(m, tmp_path):
    """virsh on a shut-off machine: a disk-only internal snapshot (state shutoff, no VM
    state); revert puts the disk back and leaves the machine off unless --running."""
    disk = qcow2(m, "b.qcow2")
    qemu_io(disk, "write -P 0x33 64k 64k")
    m.create("off", "-m", "64M", "--disk", disk)
    m.ok("snapshot-create-as", "off", "cold")
    assert snapshot_table(disk)["cold"][0] == "0 B"
    line = m.ok("snapshot-list", "off").stdout.splitlines()[2]
    assert line.split()[0] == "cold" and line.split()[-1] == "shutoff"
    before = disk_bytes(disk, tmp=str(tmp_path))
    qemu_io(disk, "write -P 0x44 0 192k")
    m.ok("snapshot-revert", "off", "cold")
    assert m.state_of("off") == "shut off"
    assert disk_bytes(disk, tmp=str(tmp_path)) == before
    m.ok("snapshot-revert", "off", "cold", "--running")
    assert m.state_of("off") == "running"
    m.ok("destroy", "off")
    m.ok("snapshot-delete", "off", "cold")
    assert "cold" not in qemu_img("snapshot", "-l", disk)
    assert "No errors were found" in qemu_img("check", disk)


def test_snapshot_refusals(m):
    """Raw disks refuse a full snapshot; an unknown or duplicate name is refused; nothing is
    left on the disks by a refused snapshot (all or nothing over the disks)."""
    raw = m.disk("r.raw", 1 << 20)
    q = qcow2(m, "c.qcow2")
    m.create("rw", "-m", "64M", "--disk", q, "--disk", f"{raw},format=raw")
    m.ok("start", "rw")
    r = m("snapshot-create-as", "rw", "s")
    assert r.returncode == 1, r.stderr
    assert r.stderr.startswith("kite: error: ") and "raw" in r.stderr and \
        "internal snapshots need qcow2 disks" in r.stderr, r.stderr
    assert "Snapshot list" not in qemu_img("snapshot", "-U", "-l", q)  # vda took none
    assert m.ok("snapshot-list", "rw").stdout.count("\n") == 2  # header and rule only
    m.ok("destroy", "rw")
    # Names, on a shut-off machine (no VMM to start: the verbs open its disks themselves).
    m.create("q", "-m", "64M", "--disk", qcow2(m, "d.qcow2"))
    m.ok("snapshot-create-as", "q", "one")
    r = m("snapshot-create-as", "q", "one")
    assert r.returncode == 1 and "snapshot 'one' already exists" in r.stderr, r.stderr
    for verb in ("snapshot-revert", "snapshot-delete", "snapshot-info", "snapshot-dumpjson"):
        r = m(verb, "q", "nope")
        assert r.returncode == 1 and r.stderr == \
            "kite: error: machine q has no snapshot named 'nope'\n", (verb, r.stderr)
    r = m("snapshot-create-as", "q", "a/b")
    assert r.returncode == 1 and "not a snapshot name" in r.stderr, r.stderr
    # virsh's undefine: refused while snapshots exist, unless their metadata goes too.
    r = m("undefine", "q")
    assert r.returncode == 1 and "machine q has 1 snapshot:" in r.stderr and \
        "--snapshots-metadata" in r.stderr, r.stderr
    m.ok("undefine", "q", "--snapshots-metadata")
    assert not os.path.exists(os.path.join(m.state, "q.snapshots"))


def test_disk_only_takes_external_overlays_of_raw_disks(m):
    """--disk-only as virsh: every writable disk, raw included, moves onto a new qcow2
    overlay DISK.SNAP backed by it (qemu-img is the referee), on a running machine and on a
    stopped one; the definition follows; reverting to it is refused clearly."""
    raw = m.disk("x.raw", 1 << 20)
    q = qcow2(m, "y.qcow2")
    m.create("ov", "-m", "64M", "--disk", f"{raw},format=raw", "--disk", q)
    m.ok("start", "ov")
    m.ok("snapshot-create-as", "ov", "e1", "--disk-only")
    over_raw, over_q = os.path.join(m.dir, "x.e1"), os.path.join(m.dir, "y.e1")
    listing = m.ok("domblklist", "ov").stdout
    assert over_raw in listing and over_q in listing, listing
    m.ok("destroy", "ov")
    info = json.loads(qemu_img("info", "--output=json", over_raw))
    assert info["format"] == "qcow2" and info["backing-filename"] == raw and \
        info["backing-filename-format"] == "raw" and info["virtual-size"] == 1 << 20, info
    assert json.loads(qemu_img("info", "--output=json", over_q))["backing-filename"] == q
    assert "No errors were found" in qemu_img("check", over_raw)
    info = m.ok("snapshot-info", "ov", "e1").stdout
    assert re.search(r"State: +disk-snapshot", info) and \
        re.search(r"Location: +external", info), info
    # Stopped: the same, from the overlays on.
    m.ok("snapshot-create-as", "ov", "e2", "--disk-only")
    assert os.path.join(m.dir, "x.e2") in m.ok("domblklist", "ov").stdout
    backing = json.loads(qemu_img("info", "--output=json", os.path.join(m.dir, "x.e2")))
    assert backing["backing-filename"] == over_raw, backing
    r = m("snapshot-revert", "ov", "e1")
    assert r.returncode == 1 and r.stderr.startswith("kite: error: snapshot e1 is external"), \
        r.stderr
    m.ok("snapshot-delete", "ov", "e1")  # the record only: the overlays are the disks now
    assert os.path.exists(over_raw)


def set_vm_state_size(image, size):
    """Writes `size` into the first snapshot's vm_state_size fields (32-bit and extra 64-bit)."""
    with open(image, "r+b") as f:
        f.seek(60)
        count, table = struct.unpack(">IQ", f.read(12))
        assert count == 1
        f.seek(table + 32)
        f.write(struct.pack(">I", size & 0xffffffff))
        f.seek(table + 40)
        f.write(struct.pack(">Q", size))


def test_revert_refuses_a_hostile_vm_state_before_touching_the_disk(m, tmp_path):
    """A snapshot table whose VM state size the L1 table does not cover, or which cuts the
    save file short: revert refuses with a kite error (ASan build included) and the disk
    and the machine stay as they were."""
    disk = qcow2(m, "h.qcow2")
    m.create("h", "-m", "64M", "--disk", disk)
    m.ok("start", "h")
    m.ok("snapshot-create-as", "h", "s")
    m.ok("destroy", "h")
    qemu_io(disk, "write -P 0x55 0 64k")
    before = disk_bytes(disk, tmp=str(tmp_path))
    for size, why in ((1 << 40, "does not cover its VM state"),
                      (8192, "its VM state is not usable")):
        set_vm_state_size(disk, size)
        r = m("snapshot-revert", "h", "s")
        assert r.returncode == 1 and r.stderr.startswith("kite: error: "), r.stderr
        assert why in r.stderr, r.stderr
        assert "Sanitizer" not in r.stderr and "runtime error" not in r.stderr, r.stderr
        assert m.state_of("h") == "shut off"
        assert disk_bytes(disk, tmp=str(tmp_path)) == before


def test_snapshot_verbs_argument_errors(m):
    m.create("args", "-m", "64M")
    for argv, why in (
            (["snapshot-create-as", "args"], "NAME SNAP"),
            (["snapshot-list"], "NAME"),
            (["snapshot-dumpjson", "args"], "NAME SNAP"),
            (["snapshot-revert", "args", "s", "--running", "--paused"], "exclude each other"),
            (["snapshot-info", "args"], "SNAP or --current"),
            (["snapshot-current", "args"], "has no current snapshot"),
            (["snapshot-list", "ghost"], "ghost"),
            (["snapshot-create-as", "args", "s", "--bogus"], "bogus")):
        r = m(*argv)
        assert r.returncode == 1, (argv, r.stdout, r.stderr)
        assert why in r.stderr, (argv, r.stderr)
    # Damaged metadata is refused by name, never trusted (nor a crash, under ASan).
    meta = os.path.join(m.state, "args.snapshots")
    for text, why in (('{"current": 5', "not valid JSON"),
                      ('{"current": null, "snapshots": [{"name": "s", "description": "", '
                       '"parent": null, "creation_time": 1, "state": "shutoff", '
                       '"memory": false, "vmstate_disk": null, "vm_state_size": 0, '
                       '"disks": [{"x": 1}]}]}', "snapshot 1: disk 1 is corrupt")):
        with open(meta, "w") as f:
            f.write(text)
        r = m("snapshot-info", "args", "s")
        assert r.returncode == 1 and r.stderr.startswith("kite: error: ") and \
            why in r.stderr, r.stderr
    os.unlink(meta)
    r = m.ok("snapshot-create-as", "--help")
    assert r.stdout.startswith("usage: kite snapshot-create-as NAME SNAP")
    assert "snapshot-revert" in m.ok("--help").stdout


# ---- under KVM: the state guest program ----

STEP = re.compile(r"STATE: step=(\d+) ticks=(\d+)")
BLOCK = 512


def pattern(value):
    return bytes((value * 37 + i * 11 + 5) & 0xff for i in range(BLOCK))


def last_step(text):
    steps = [int(s) for s, _ in STEP.findall(text)]
    return steps[-1] if steps else 0


@pytest.mark.kvm
@pytest.mark.timeout(900)
# One build: the ASan one, which also finds memory errors (the release build runs the same
# code in the host tests); ~60 s under QEMU's software CPU.
@pytest.mark.parametrize("kite", ["asan"], indirect=True)
def test_state_guest_snapshot_run_on_revert(kite, tmp_path):
    """The state guest (counters in RAM, LAPIC timer, virtio-blk writes) on a qcow2 disk:
    snapshot while it runs, let it run on, revert. It continues from the snapshot's step with
    the counters of that instant (sum check), the timer fires, the snapshot's disk holds
    exactly the blocks of the steps before it (qemu-img reads it), qemu-img check is clean
    and lists the snapshot with its VM state and guest clock. Then a --disk-only snapshot
    moves the running disk onto an overlay, through which the guest reads every block back."""
    from test_guest_programs import guest_elf
    m = Machines(kite)
    del m.env["KITE_RUNNER"]
    disk = os.path.join(m.dir, "st.qcow2")
    qemu_img("create", "-q", "-f", "qcow2", disk, "8M")
    console = os.path.join(m.run_dir, "st.console")

    def console_until(pred, timeout):
        end = time.monotonic() + timeout
        text = ""
        while time.monotonic() < end:
            text = open(console).read() if os.path.exists(console) else ""
            if pred(text):
                break
            time.sleep(0.2)
        return text

    try:
        m.create("st", "--kernel", guest_elf("state"), "-m", "64M", "--disk", disk,
                 "--append", "steps=30 every=150 blk=1 seed=9")
        m.ok("start", "st")
        a = last_step(console_until(lambda t: last_step(t) >= 3, 180))
        assert a >= 3
        m.ok("snapshot-create-as", "st", "s1", timeout=600)
        b = last_step(open(console).read())
        # It runs on after the snapshot: steps past it, and blocks written past it.
        ran_on = last_step(console_until(lambda t: last_step(t) >= b + 3, 180))
        assert ran_on >= b + 3
        m.ok("snapshot-revert", "st", "s1", timeout=600)
        # While it writes on: --disk-only moves the running disk onto an overlay; the guest's
        # closing read-back of every block then reads through it.
        console_until(lambda t: last_step(t) >= 1, 180)
        m.ok("snapshot-create-as", "st", "e1", "--disk-only", timeout=600)
        text = console_until(lambda t: re.search(r"SUMMARY: [^\n]*\n", t), 300)
        steps = [int(s) for s, _ in STEP.findall(text)]
        assert steps, text
        first = steps[0]
        # From the snapshot's instant (after step a), back before where it had run on to.
        assert a + 1 <= first <= ran_on, (a, b, ran_on, text)
        assert steps == list(range(first, 31)), text
        assert "GUEST state: start" not in text, text  # resumed, not booted
        assert re.search(r"PASS: counters: 30 steps, their sum 465", text), text
        assert re.search(r"PASS: timer: \d+ ticks", text), text
        assert "PASS: disk: every step's block reads back" in text, text
        assert re.search(r"SUMMARY: \d+ passed, 0 failed", text), text
        # It powers off after its summary: the VMM closes its disks itself (a destroy that
        # kills a writer may leave leaked clusters, which qemu-img check counts).
        end = time.monotonic() + 120
        while m.state_of("st") != "shut off" and time.monotonic() < end:
            time.sleep(0.2)
        assert m.state_of("st") == "shut off"
    finally:
        m("destroy", "st")
    snap = first - 1  # the guest's last step before the snapshot
    data = disk_bytes(disk, "s1", str(tmp_path))
    assert data[BLOCK:2 * BLOCK] == pattern(9)
    for step in range(1, snap + 1):
        assert data[(16 + step) * BLOCK:(17 + step) * BLOCK] == pattern(step), step
    assert data[(17 + snap) * BLOCK:(18 + snap) * BLOCK] == bytes(BLOCK), snap
    size, clock = snapshot_table(disk)["s1"]
    assert size != "0 B" and clock != "00:00:00.000", (size, clock)
    assert "No errors were found on the image." in qemu_img("check", "-U", disk)
    overlay = os.path.join(m.dir, "st.e1")
    assert json.loads(qemu_img("info", "-U", "--output=json", overlay))["backing-filename"] \
        == disk
    assert "No errors were found on the image." in qemu_img("check", "-U", overlay)
    m.cleanup()
