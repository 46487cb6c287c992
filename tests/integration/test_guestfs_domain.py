"""kite guest -d DOMAIN: a machine's disks from its definition (state directory, the fake runner
as the VMM, holding its disks' locks as a real VM does), with debugfs and e2fsck as referees."""
import json
import os

import pytest

from conftest import run
from test_guestfs_common import MiB, debugfs, e2fsck_clean, mkfs, sh
from test_machines import Machines


@pytest.fixture
def m(kite):
    machines = Machines(kite)
    yield machines
    machines.cleanup()


def tree(root, release=True, marker="root"):
    os.makedirs(f"{root}/etc")
    os.makedirs(f"{root}/data")
    if release:
        with open(f"{root}/etc/os-release", "w") as f:
            f.write('PRETTY_NAME="Domain Linux"\nID=dom\n')
    with open(f"{root}/etc/passwd", "w") as f:
        f.write("root:x:0:0:root:/root:/bin/sh\n")
    with open(f"{root}/which", "w") as f:
        f.write(marker + "\n")
    with open(f"{root}/data/blob.bin", "wb") as f:
        f.write(os.urandom(300000))


def ext4_disk(tmp_path, name, release=True, marker="root", size=32 * MiB):
    src = tmp_path / f"{name}-tree"
    tree(str(src), release, marker)
    return mkfs(str(tmp_path / name), str(src), size=size)


def guest(m, *args, **kw):
    return m("guest", *args, **kw)


def test_read_verbs_on_a_stopped_machine(m, tmp_path):
    img = ext4_disk(tmp_path, "web.raw")
    m.create("web", "--disk", f"{img},format=raw")
    r = guest(m, "cat", "-d", "web", "/etc/passwd")
    assert r.returncode == 0, r.stderr
    assert r.stdout == "root:x:0:0:root:/root:/bin/sh\n"
    r = guest(m, "ls", "-d", "web", "/etc")
    assert r.returncode == 0 and r.stdout.split() == ["os-release", "passwd"]
    out = tmp_path / "out"
    out.mkdir()
    r = guest(m, "copy-out", "-d", "web", "/etc/passwd", "/data", str(out))
    assert r.returncode == 0, r.stderr
    assert (out / "passwd").read_text() == "root:x:0:0:root:/root:/bin/sh\n"
    assert (out / "data" / "blob.bin").stat().st_size == 300000
    r = guest(m, "df", "-d", "web")
    assert r.returncode == 0 and "web:/dev/sda" in r.stdout
    r = guest(m, "filesystems", "-d", "web")
    assert r.returncode == 0 and "/dev/sda" in r.stdout and "ext4" in r.stdout


def test_copy_out_bytes_equal_debugfs(m, tmp_path):
    img = ext4_disk(tmp_path, "web.raw")
    m.create("web", "--disk", img)
    out = tmp_path / "out"
    out.mkdir()
    assert guest(m, "copy-out", "-d", "web", "/data/blob.bin", str(out)).returncode == 0
    ref = tmp_path / "ref.bin"
    sh(["debugfs", "-R", f"dump /data/blob.bin {ref}", img])
    assert (out / "blob.bin").read_bytes() == ref.read_bytes()


def test_write_verbs_on_a_stopped_machine(m, tmp_path):
    img = ext4_disk(tmp_path, "web.raw")
    m.create("web", "--disk", img)
    r = guest(m, "write", "-d", "web", "/etc/motd", input="hello from -d\n")
    assert r.returncode == 0, r.stderr
    assert debugfs(img, "cat /etc/motd") == "hello from -d\n"
    assert guest(m, "mkdir", "-d", "web", "/srv").returncode == 0
    assert "srv" in debugfs(img, "ls /")
    e2fsck_clean(img)
    r = guest(m, "write", "--ro", "-d", "web", "/etc/motd", input="x")
    assert r.returncode == 1 and "--ro: this verb writes" in r.stderr


def test_a_running_machine(m, tmp_path):
    img = ext4_disk(tmp_path, "web.qcow2.raw")
    qcow = str(tmp_path / "web.qcow2")
    sh(["qemu-img", "convert", "-f", "raw", "-O", "qcow2", img, qcow])
    m.create("web", "--disk", f"{qcow},format=qcow2")
    m.ok("start", "web")
    assert m.state_of("web") == "running"
    # the fake VMM holds the image's lock as a real one does
    r = run(["qemu-img", "info", qcow])
    assert r.returncode != 0 and "lock" in r.stderr
    for argv in (["write", "-d", "web", "/x"], ["mkdir", "-d", "web", "/y"],
                 ["rm", "-d", "web", "/etc/passwd"], ["write", "-d", "web", "--ro", "/x"]):
        r = guest(m, *argv, input="data")
        assert r.returncode == 1, argv
        assert r.stderr.startswith("kite: error: "), r.stderr
    r = guest(m, "write", "-d", "web", "/x", input="data")
    assert "machine 'web' is running: kite guest does not write" in r.stderr
    r = guest(m, "cat", "-d", "web", "/etc/passwd")
    assert r.returncode == 1
    assert "machine 'web' is running: add --ro" in r.stderr
    r = guest(m, "cat", "-d", "web", "--ro", "/etc/passwd")
    assert r.returncode == 0, r.stderr
    assert r.stdout == "root:x:0:0:root:/root:/bin/sh\n"
    assert "kite: warning: machine 'web' is running" in r.stderr
    out = tmp_path / "out"
    out.mkdir()
    r = guest(m, "copy-out", "--ro", "-d", "web", "/data/blob.bin", str(out))
    assert r.returncode == 0, r.stderr
    ref = tmp_path / "ref.bin"
    sh(["debugfs", "-R", f"dump /data/blob.bin {ref}", img])
    assert (out / "blob.bin").read_bytes() == ref.read_bytes()
    for verb in (["ls", "/etc"], ["df"], ["filesystems"], ["partitions"]):
        r = guest(m, verb[0], "-d", "web", *verb[1:])
        assert r.returncode == 1 and "add --ro" in r.stderr, verb
        r = guest(m, verb[0], "-d", "web", "--ro", *verb[1:])
        assert r.returncode == 0, (verb, r.stderr)
    # nothing was written, and the VM still holds its lock
    assert m.state_of("web") == "running"
    m.ok("destroy", "web")
    assert run(["qemu-img", "check", qcow]).returncode == 0
    # stopped again: writes work with the usual locks
    r = guest(m, "write", "-d", "web", "/etc/motd", input="after\n")
    assert r.returncode == 0, r.stderr


def test_fish_on_a_running_machine(m, tmp_path):
    img = ext4_disk(tmp_path, "web.raw")
    m.create("web", "--disk", img)
    m.ok("start", "web")
    r = guest(m, "fish", "-d", "web", "-i", input="cat /etc/passwd\n")
    assert r.returncode == 1 and "add --ro" in r.stderr
    r = guest(m, "fish", "--ro", "-d", "web", "-i", input="cat /etc/passwd\nls /etc\n")
    assert r.returncode == 0, r.stderr
    assert r.stdout == "root:x:0:0:root:/root:/bin/sh\nos-release\npasswd\n"
    r = guest(m, "fish", "--ro", "-d", "web", "-i", input="write /x hello\n")
    assert r.returncode == 1 and "read-only" in r.stderr
    m.ok("destroy", "web")


def test_several_disks(m, tmp_path):
    """Disks in the definition's order are /dev/sda, /dev/sdb: the verbs choose the one holding
    /etc/os-release, -a names another, fish adds them all."""
    data = ext4_disk(tmp_path, "data.raw", release=False, marker="data", size=48 * MiB)
    root = str(tmp_path / "root.img")
    with open(root, "wb") as f:
        f.truncate(40 * MiB)
    sh(["sfdisk", "-q", root], input="label: dos\n,32M,L\n")
    src = tmp_path / "root-tree"
    tree(str(src), True, "root")
    fs = mkfs(str(tmp_path / "rootfs"), str(src), size=32 * MiB)
    sh(["dd", f"if={fs}", f"of={root}", "bs=1M", "seek=1", "conv=notrunc", "status=none"])
    m.create("two", "--disk", f"{data},format=raw", "--disk", f"{root},format=raw")
    r = guest(m, "cat", "-d", "two", "/which")
    assert r.returncode == 0 and r.stdout == "root\n", r.stderr
    r = guest(m, "cat", "-d", "two", "-a", "/dev/sda", "/which")
    assert r.returncode == 0 and r.stdout == "data\n", r.stderr
    r = guest(m, "cat", "-d", "two", "-a", "/dev/sdb1", "/which")
    assert r.returncode == 0 and r.stdout == "root\n", r.stderr
    r = guest(m, "cat", "-d", "two", "-a", "/dev/sdc1", "/which")
    assert r.returncode == 1 and "no disk /dev/sdc" in r.stderr
    r = guest(m, "write", "-d", "two", "-a", "sda", "/new", input="on data\n")
    assert r.returncode == 0, r.stderr
    assert debugfs(data, "cat /new") == "on data\n"
    r = guest(m, "filesystems", "-d", "two")
    assert r.returncode == 0
    devs = [l.split()[0] for l in r.stdout.splitlines()[1:]]
    assert devs == ["/dev/sda", "/dev/sdb1"]
    r = guest(m, "df", "-d", "two", "--csv")
    assert r.returncode == 0
    assert [l.split(",")[1] for l in r.stdout.splitlines()[1:]] == ["/dev/sda", "/dev/sdb1"]
    r = guest(m, "partitions", "-d", "two", "--output=json")
    assert r.returncode == 0
    parts = json.loads(r.stdout)
    assert [p["device"] for p in parts] == ["/dev/sda", "/dev/sdb"]
    assert parts[1]["scheme"] == "mbr"
    script = "list-devices\nlist-filesystems\nmount /dev/sda /\ncat /which\n"
    r = guest(m, "fish", "-d", "two", input="run\n" + script)
    assert r.returncode == 0, r.stderr
    assert r.stdout == ("/dev/sda\n/dev/sdb\n/dev/sda: ext4\n/dev/sdb1: ext4\ndata\n")
    r = guest(m, "fish", "-d", "two", "-i", input="cat /which\n")
    assert r.returncode == 0 and r.stdout == "root\n", r.stderr


def test_domain_errors(m, tmp_path):
    r = guest(m, "cat", "-d", "nosuch", "/etc/passwd")
    assert r.returncode == 1 and "no machine named 'nosuch'" in r.stderr
    m.create("empty")
    r = guest(m, "ls", "-d", "empty", "/")
    assert r.returncode == 1 and "machine 'empty' has no disks" in r.stderr
    r = guest(m, "cat", "-d")
    assert r.returncode == 1
