"""kite guest mount: a FUSE view of the filesystem inside an image. Everything done through the
mount is seen by debugfs afterwards and e2fsck -fn is clean once it is unmounted."""
import os
import subprocess
import time

import pytest

from conftest import run
from test_guestfs_common import MiB, debugfs_ls, e2fsck_clean, make_tree, mkfs, sh
from test_guestfs_read import compare_trees, fails

pytestmark = pytest.mark.skipif(not os.path.exists("/dev/fuse"), reason="no /dev/fuse")


@pytest.fixture(scope="module")
def tree(tmp_path_factory):
    root = str(tmp_path_factory.mktemp("tree") / "root")
    make_tree(root)
    return root


class Mounted:
    """`kite guest mount -f` in the background; leaving unmounts and waits for the flush."""

    def __init__(self, kite, img, mnt, *opts):
        self.mnt = mnt
        self.proc = subprocess.Popen([kite, "guest", "mount", img, mnt, "-f", *opts],
                                     stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        deadline = time.time() + 30
        while not os.path.ismount(mnt):
            assert self.proc.poll() is None, self.proc.stderr.read()
            assert time.time() < deadline, "mount did not appear"
            time.sleep(0.05)

    def __enter__(self):
        return self.mnt

    def __exit__(self, *exc):
        run(["fusermount3", "-u", self.mnt])
        try:
            self.proc.wait(timeout=60)
        finally:
            if self.proc.poll() is None:
                self.proc.kill()
                self.proc.wait()
        err = self.proc.stderr.read()
        assert "Sanitizer" not in err and "runtime error" not in err, err
        if exc[0] is None:
            assert self.proc.returncode == 0, err


def test_mount_reads_the_tree_exactly(kite, tree, tmp_path):
    img = mkfs(str(tmp_path / "m.img"), tree, size=32 * MiB)
    q = str(tmp_path / "m.qcow2")
    sh(["qemu-img", "convert", "-O", "qcow2", img, q])
    mnt = str(tmp_path / "mnt")
    os.mkdir(mnt)
    with Mounted(kite, q, mnt, "--ro"):
        compare_trees(tree, mnt)
        assert os.stat(mnt + "/hello.txt").st_ino == os.stat(mnt + "/hard-link").st_ino
        with pytest.raises(OSError):
            open(mnt + "/new", "w")
        st = os.statvfs(mnt)
        assert st.f_blocks * st.f_frsize == 32 * MiB


def test_changes_through_the_mount_are_clean_and_visible(kite, tree, tmp_path):
    img = mkfs(str(tmp_path / "m.img"), tree, size=32 * MiB)
    mnt = str(tmp_path / "mnt")
    os.mkdir(mnt)
    data = os.urandom(MiB + 5)
    with Mounted(kite, img, mnt):
        with open(mnt + "/etc/new.bin", "wb") as f:
            f.write(data)
        os.mkdir(mnt + "/srv")
        os.symlink("../etc/new.bin", mnt + "/srv/link")
        os.link(mnt + "/etc/new.bin", mnt + "/srv/hard")
        os.rename(mnt + "/a", mnt + "/srv/a-moved")  # a directory: its ".." follows
        os.rename(mnt + "/hello.txt", mnt + "/etc/hello.txt")
        os.unlink(mnt + "/random.bin")
        os.rmdir(mnt + "/empty")
        with pytest.raises(OSError):
            os.rmdir(mnt + "/etc")  # not empty
        os.chmod(mnt + "/etc/new.bin", 0o600)
        os.chown(mnt + "/srv", 4321, 8765)
        os.utime(mnt + "/srv/hard", (1500000000, 1500000000))
        with open(mnt + "/etc/hostname", "r+") as f:
            f.truncate(3)
        with open(mnt + "/etc/new.bin", "rb") as f:
            assert f.read() == data
        r = fails(kite, "write", img, "/other", input="x")  # the mount holds the image
        assert "Is another process using the image" in r.stderr
        # and QEMU sees kite's lock as its own kind
        r = run(["qemu-io", "-f", "raw", "-c", "write 0 512", img])
        assert r.returncode != 0 and "lock" in r.stderr, r.stderr
    e2fsck_clean(img)
    assert run(["debugfs", "-R", "cat /srv/hard", img], text=False).stdout == data
    srv = debugfs_ls(img, "/srv")
    assert set(srv) == {"link", "hard", "a-moved"}
    assert srv["hard"][0] == 0o100600
    assert debugfs_ls(img, "/")["srv"][1:3] == (4321, 8765)
    assert "random.bin" not in debugfs_ls(img, "/")
    assert run(["debugfs", "-R", "cat /etc/hostname", img]).stdout == "old"
    # the moved directory's ".." is its new parent
    dotdot = run(["debugfs", "-R", "ls -p /srv/a-moved", img]).stdout.splitlines()[1]
    srv_ino = run(["debugfs", "-R", "ls -p /", img]).stdout
    srv_ino = [l for l in srv_ino.splitlines() if "/srv/" in l][0].split("/")[1]
    assert dotdot.split("/")[1] == srv_ino


def test_mount_errors(kite, tree, tmp_path):
    img = mkfs(str(tmp_path / "m.img"), tree, size=16 * MiB)
    fails(kite, "mount", img, str(tmp_path / "missing"))
    fails(kite, "mount", img)
