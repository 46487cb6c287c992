"""kite guest changing images: write, mkdir, rm, chmod, chown, ln, copy-in. After every change
e2fsck -fn is clean and debugfs (the referee) sees it; refusals leave the image untouched."""
import hashlib
import os
import stat

import pytest

from conftest import run
from test_guestfs_common import MiB, debugfs, debugfs_ls, e2fsck_clean, make_tree, mkfs, sh
from test_guestfs_read import compare_trees, fails, ok, walk


@pytest.fixture(scope="module")
def tree(tmp_path_factory):
    root = str(tmp_path_factory.mktemp("tree") / "root")
    make_tree(root)
    return root


def sha(path):
    with open(path, "rb") as f:
        return hashlib.sha256(f.read()).hexdigest()


def debugfs_cat(img, path):
    return run(["debugfs", "-R", f"cat {path}", img], text=False).stdout


@pytest.mark.parametrize("fstype,opts", [
    ("ext4", []),
    ("ext2", ["-b", "1024"]),
    ("ext3", []),
    ("ext4", ["-O", "inline_data,metadata_csum,64bit", "-I", "256"]),
])
def test_small_changes_are_clean_and_visible_to_debugfs(kite, tree, tmp_path, fstype, opts):
    img = mkfs(str(tmp_path / "w.img"), tree, size=32 * MiB, fstype=fstype, opts=opts)
    data = os.urandom(2 * MiB + 17)
    ok(kite, "write", img, "/etc/motd", input=data, text=False)
    ok(kite, "write", img, "/hello.txt", input="replaced\n")  # shorter than before
    ok(kite, "mkdir", img, "/srv")
    ok(kite, "mkdir", img, "-p", "/opt/x/y/z", "/srv/a")
    ok(kite, "ln", img, "-s", "../etc/motd", "/srv/motd-link")
    ok(kite, "ln", img, "/etc/motd", "/srv/motd-hard")
    ok(kite, "chmod", img, "0640", "/etc/motd")
    ok(kite, "chown", img, "1234:5678", "/opt/x")
    ok(kite, "write", img, "/etc/passwd", input="root:x:0:0::/root:/bin/sh\nbob:x:1500:1500::/:/bin/sh\n")
    ok(kite, "write", img, "/etc/group", input="root:x:0:\nstaff:x:50:\n")
    ok(kite, "chown", img, "bob:staff", "/hard-link")
    ok(kite, "rm", img, "/random.bin", "/rel-link")
    ok(kite, "rm", img, "-r", "/a")
    e2fsck_clean(img)
    assert debugfs_cat(img, "/etc/motd") == data
    assert debugfs_cat(img, "/hello.txt") == b"replaced\n"
    assert debugfs_cat(img, "/hard-link") == b"replaced\n"  # same inode as /hello.txt
    root = debugfs_ls(img, "/")
    assert {"srv", "opt"} <= set(root) and not {"random.bin", "rel-link", "a"} & set(root)
    srv = debugfs_ls(img, "/srv")
    assert srv["motd-link"][0] == 0o120777 and srv["motd-hard"][0] == 0o100640
    assert "Links: 2" in debugfs(img, "stat /etc/motd")
    assert debugfs_ls(img, "/opt")["x"][1:3] == (1234, 5678)
    assert debugfs_ls(img, "/")["hard-link"][1:3] == (1500, 50)
    assert debugfs_ls(img, "/opt/x/y") == {"z": (0o40755, 0, 0, debugfs_ls(img, "/opt/x/y")["z"][3])}
    assert ok(kite, "cat", img, "/srv/motd-link", text=False).stdout == data


def test_rm_refuses_a_non_empty_directory_and_the_root(kite, tree, tmp_path):
    img = mkfs(str(tmp_path / "w.img"), tree, size=32 * MiB)
    before = sha(img)
    r = fails(kite, "rm", img, "/a")
    assert "not empty" in r.stderr.lower()
    fails(kite, "rm", img, "/")
    fails(kite, "rm", img, "/nope")
    fails(kite, "mkdir", img, "/etc")  # exists
    fails(kite, "mkdir", img, "/no/such/parent")
    fails(kite, "write", img, "/etc", input="x")
    fails(kite, "chmod", img, "999", "/etc")
    r = fails(kite, "chown", img, "bob", "/etc")  # no /etc/passwd entry in the image
    assert "bob" in r.stderr
    ok(kite, "rm", img, "-f", "/nope")
    assert sha(img) == before  # refused changes wrote nothing


def test_copy_in_keeps_everything_and_copy_out_gives_it_back(kite, tree, tmp_path):
    img = mkfs(str(tmp_path / "w.img"), size=64 * MiB)
    ok(kite, "mkdir", img, "/data")
    ok(kite, "copy-in", img, tree, "/data")
    e2fsck_clean(img)
    out = str(tmp_path / "out")
    os.mkdir(out)
    ok(kite, "copy-out", img, "/data/root", out)
    compare_trees(tree, out + "/root")
    for rel in ["/hello.txt", "/a/b/c/deep.bin"]:
        a, b = os.stat(tree + rel), os.stat(out + "/root" + rel)
        assert a.st_mtime_ns == b.st_mtime_ns, rel  # nanoseconds survive the round trip
    assert os.stat(out + "/root/hello.txt").st_ino == os.stat(out + "/root/hard-link").st_ino
    assert "Links: 2" in debugfs(img, "stat /data/root/hello.txt")
    blocks = int(debugfs(img, "stat /data/root/sparse.img").split("Blockcount: ")[1].split()[0])
    assert blocks * 512 < 1 * MiB  # the hole stayed a hole
    assert stat.S_ISFIFO(os.lstat(out + "/root/fifo").st_mode)
    # copying again replaces files and merges directories
    ok(kite, "copy-in", img, tree + "/hello.txt", tree + "/etc", "/data/root")
    e2fsck_clean(img)


def test_directory_growing_into_an_htree(kite, tmp_path):
    src = str(tmp_path / "many")
    os.mkdir(src)
    for i in range(3000):
        with open(f"{src}/entry-with-a-longish-name-{i:05d}", "w") as f:
            f.write(str(i))
    img = mkfs(str(tmp_path / "w.img"), size=64 * MiB, opts=["-b", "1024"])
    ok(kite, "copy-in", img, src, "/")
    e2fsck_clean(img)
    assert len(debugfs_ls(img, "/many")) == 3000
    ok(kite, "write", img, "/many/entry-with-a-longish-name-01234", input="changed")
    assert debugfs_cat(img, "/many/entry-with-a-longish-name-01234") == b"changed"
    ok(kite, "rm", img, "-r", "/many")
    e2fsck_clean(img)


def test_writes_through_qcow2_backing_chain_leave_the_base_alone(kite, tree, tmp_path):
    raw = mkfs(str(tmp_path / "base.img"), tree, size=32 * MiB)
    base = str(tmp_path / "base.qcow2")
    top = str(tmp_path / "top.qcow2")
    sh(["qemu-img", "convert", "-O", "qcow2", raw, base])
    sh(["qemu-img", "create", "-q", "-f", "qcow2", "-b", base, "-F", "qcow2", top])
    before = sha(base)
    ok(kite, "write", top, "/etc/motd", input="from the overlay\n")
    ok(kite, "copy-in", top, tree + "/a", "/etc")
    assert sha(base) == before
    sh(["qemu-img", "check", "-q", top])
    flat = str(tmp_path / "flat.img")
    sh(["qemu-img", "convert", "-O", "raw", top, flat])
    e2fsck_clean(flat)
    assert debugfs_cat(flat, "/etc/motd") == b"from the overlay\n"
    assert debugfs_cat(flat, "/etc/a/b/c/deep.bin") == bytes(range(256)) * 1000
    assert "motd" not in debugfs_ls(raw, "/etc")


def test_writes_are_refused_on_read_only_images_and_damaged_filesystems(kite, tree, tmp_path):
    img = mkfs(str(tmp_path / "w.img"), tree, size=32 * MiB)
    os.chmod(img, 0o444)
    before = sha(img)
    r = fails(kite, "write", img, "/x", input="x")
    assert "read-only" in r.stderr
    assert sha(img) == before
    os.chmod(img, 0o644)
    # a filesystem marked as having errors
    sh(["debugfs", "-w", "-R", "ssv state 2", img])
    before = sha(img)
    r = fails(kite, "mkdir", img, "/x")
    assert "e2fsck" in r.stderr and "errors" in r.stderr
    assert sha(img) == before
    assert "hello.txt" in ok(kite, "ls", img, "/").stdout  # reading still works
    # a journal that needs recovery
    img2 = mkfs(str(tmp_path / "j.img"), tree, size=32 * MiB)
    sh(["debugfs", "-w", "-R", "feature needs_recovery", img2])
    r = fails(kite, "write", img2, "/x", input="x")
    assert "recovery" in r.stderr
    # the quota feature: usage could not be kept exact
    img3 = mkfs(str(tmp_path / "q.img"), tree, size=32 * MiB, opts=["-O", "quota"])
    r = fails(kite, "write", img3, "/x", input="x")
    assert "quota" in r.stderr
    # vmdk images are read-only in kite's block layer
    v = str(tmp_path / "w.vmdk")
    sh(["qemu-img", "convert", "-O", "vmdk", img2, v])
    fails(kite, "write", v, "/x", input="x")


def test_paths_cannot_escape_when_writing(kite, tree, tmp_path):
    img = mkfs(str(tmp_path / "w.img"), tree, size=32 * MiB)
    ok(kite, "ln", img, "-s", "../../../../../tmp", "/escape")
    r = fails(kite, "write", img, "/escape/pwned", input="x")
    assert "outside" in r.stderr
    r = fails(kite, "mkdir", img, "/../x")
    assert "outside" in r.stderr
    # an absolute symlink is resolved inside the image
    ok(kite, "ln", img, "-s", "/etc", "/etc-link")
    ok(kite, "write", img, "/etc-link/via-link", input="inside\n")
    assert debugfs_cat(img, "/etc/via-link") == b"inside\n"
    assert not os.path.exists("/etc/via-link")
    e2fsck_clean(img)


def test_writes_stay_inside_the_chosen_partition(kite, tree, tmp_path):
    from test_guestfs_common import extract, place
    disk = str(tmp_path / "gpt.img")
    with open(disk, "wb") as f:
        f.truncate(64 * MiB)
    sh(["sgdisk", "-n", "1:2048:+20M", "-n", "2:0:+20M", "-n", "3:0:0", disk])
    p1, p2 = 2048 * 512, (2048 + 40960) * 512
    place(disk, mkfs(str(tmp_path / "a.img"), tree, size=20 * MiB), p1)
    place(disk, mkfs(str(tmp_path / "b.img"), tree, size=20 * MiB), p2)
    q = str(tmp_path / "gpt.qcow2")
    sh(["qemu-img", "convert", "-O", "qcow2", disk, q])
    flat = str(tmp_path / "before.img")
    sh(["qemu-img", "convert", "-O", "raw", q, flat])
    before_p1 = sha(extract(flat, p1, 20 * MiB, str(tmp_path / "p1-before")))
    data = os.urandom(3 * MiB)
    ok(kite, "write", q, "/big.bin", "-a", "2", input=data, text=False)
    ok(kite, "copy-in", q, tree + "/a", "/etc", "-a", "/dev/sda2")
    after = str(tmp_path / "after.img")
    sh(["qemu-img", "convert", "-O", "raw", q, after])
    assert sha(extract(after, p1, 20 * MiB, str(tmp_path / "p1-after"))) == before_p1
    part2 = extract(after, p2, 20 * MiB, str(tmp_path / "p2-after"))
    e2fsck_clean(part2)
    assert debugfs_cat(part2, "/big.bin") == data
    # the space after partition 2 (partition 3, never formatted) is still zeros
    with open(after, "rb") as f:
        f.seek(p2 + 20 * MiB)
        assert f.read(4 * MiB) == bytes(4 * MiB)


def test_copy_in_of_more_than_fits_changes_nothing(kite, tmp_path):
    """Issue 22: 100 MB copied into a 64 MiB ext4 filesystem. The disk is full: one error
    line saying so, exit 1, no partial file (debugfs), e2fsck -fn clean, the files already
    there intact, and removing one of them afterwards works and stays clean."""
    img = mkfs(str(tmp_path / "small.img"), size=64 * MiB)
    keep = str(tmp_path / "keep.bin")
    data = os.urandom(3 * MiB + 5)
    with open(keep, "wb") as f:
        f.write(data)
    ok(kite, "copy-in", img, keep, "/")
    before = debugfs_ls(img, "/")
    huge = str(tmp_path / "huge.bin")
    with open(huge, "wb") as f:
        f.write(os.urandom(100 * 1000 * 1000))
    r = fails(kite, "copy-in", img, huge, "/")
    assert r.stderr.strip().endswith(": No space left on device"), r.stderr
    assert len(r.stderr.strip().splitlines()) == 1, r.stderr
    assert debugfs_ls(img, "/") == before  # no huge.bin, not even a part of it
    e2fsck_clean(img)
    assert debugfs_cat(img, "/keep.bin") == data
    # the same through write: nothing of the new file is left
    with open(huge, "rb") as f:
        fails(kite, "write", img, "/huge.bin", input=f.read(), text=False)
    assert debugfs_ls(img, "/") == before
    e2fsck_clean(img)
    ok(kite, "rm", img, "/keep.bin")
    e2fsck_clean(img)
    assert "keep.bin" not in debugfs_ls(img, "/")
    ok(kite, "copy-in", img, keep, "/")  # the space came back
    assert debugfs_cat(img, "/keep.bin") == data
    e2fsck_clean(img)


def test_a_failed_change_leaves_the_image_as_it_was(kite, tree, tmp_path):
    """Every verb is all or nothing: rm of two paths, the second missing, removes neither;
    mkdir of two directories, the second refused, creates neither."""
    img = mkfs(str(tmp_path / "w.img"), tree, size=32 * MiB)
    before = debugfs_ls(img, "/")
    fails(kite, "rm", img, "/hello.txt", "/nope")
    fails(kite, "mkdir", img, "/new", "/no/such/parent")
    # as it was for the filesystem (blocks that were free may hold what the change wrote)
    assert debugfs_ls(img, "/") == before
    assert debugfs_cat(img, "/hello.txt") == b"hello, world\n"
    assert "Links: 2" in debugfs(img, "stat /hello.txt")
    e2fsck_clean(img)
