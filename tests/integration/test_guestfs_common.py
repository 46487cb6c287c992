"""Helpers shared by the kite guest tests: source trees, images made with e2fsprogs, sfdisk and
sgdisk, and the referees' views of them (debugfs, e2fsck). No tests live here."""
import os
import shutil
import subprocess

from conftest import run

MiB = 1 << 20


def sh(argv, **kw):
    """Runs a referee tool and fails the test with its output if it fails."""
    r = run(argv, **kw)
    assert r.returncode == 0, f"{argv}: {r.returncode}\n{r.stdout}\n{r.stderr}"
    return r


def make_tree(root):
    """A tree with the things copy-out must keep: modes, owners, timestamps, symlinks, a hard
    link, a sparse file, binary data, nested and empty directories."""
    os.makedirs(f"{root}/etc/ssh")
    os.makedirs(f"{root}/home/alice/.ssh")
    os.makedirs(f"{root}/empty")
    os.makedirs(f"{root}/a/b/c")
    with open(f"{root}/etc/os-release", "w") as f:
        f.write('PRETTY_NAME="Test Linux"\nID=test\n')
    with open(f"{root}/etc/hostname", "w") as f:
        f.write("old-host\n")
    with open(f"{root}/hello.txt", "w") as f:
        f.write("hello, world\n")
    with open(f"{root}/a/b/c/deep.bin", "wb") as f:
        f.write(bytes(range(256)) * 1000)
    with open(f"{root}/random.bin", "wb") as f:
        f.write(os.urandom(3 * MiB + 123))
    with open(f"{root}/sparse.img", "wb") as f:
        f.truncate(8 * MiB)
        f.seek(5 * MiB)
        f.write(b"middle")
    os.symlink("hello.txt", f"{root}/rel-link")
    os.symlink("/etc/os-release", f"{root}/abs-link")
    os.symlink("a/b", f"{root}/dir-link")
    os.link(f"{root}/hello.txt", f"{root}/hard-link")
    os.chmod(f"{root}/random.bin", 0o4751)
    os.chown(f"{root}/home/alice", 1000, 1000)
    os.chown(f"{root}/home/alice/.ssh", 1000, 1001)
    os.chmod(f"{root}/home/alice/.ssh", 0o700)
    os.utime(f"{root}/hello.txt", (1000000000, 981173106))
    os.utime(f"{root}/a/b/c/deep.bin", (1234567890, 1234567890))
    os.mkfifo(f"{root}/fifo")


def mkfs(path, tree=None, size=64 * MiB, fstype="ext4", opts=(), label=None):
    """mke2fs into a new file of `size` bytes, filled from `tree` when given."""
    with open(path, "wb") as f:
        f.truncate(size)
    argv = ["mke2fs", "-q", "-F", "-t", fstype, *opts]
    if label:
        argv += ["-L", label]
    if tree:
        argv += ["-d", tree]
    sh(argv + [path], timeout=600)  # -d with thousands of files is slow on a busy host
    return path


def debugfs(img, cmd):
    return sh(["debugfs", "-R", cmd, img]).stdout


def debugfs_ls(img, path):
    """{name: (mode, uid, gid, size)} from `debugfs ls -p` (the referee's listing)."""
    out = {}
    for line in debugfs(img, f"ls -p {path}").splitlines():
        parts = line.split("/")
        if len(parts) < 7 or parts[5] in (".", ".."):
            continue
        _, ino, mode, uid, gid, name, size = parts[:7]
        out[name] = (int(mode, 8), int(uid), int(gid), int(size) if size else None)
    return out


def e2fsck_clean(img):
    r = run(["e2fsck", "-fn", img])
    assert r.returncode == 0, f"e2fsck -fn found problems:\n{r.stdout}\n{r.stderr}"


def place(disk, fs_img, offset):
    """Copies a filesystem image into a disk image at `offset` (keeping holes)."""
    sh(["dd", f"if={fs_img}", f"of={disk}", "bs=1M", f"seek={offset}", "oflag=seek_bytes",
        "conv=notrunc,sparse", "status=none"])


def extract(disk, offset, size, out):
    sh(["dd", f"if={disk}", f"of={out}", "bs=1M", f"skip={offset}", f"count={size}",
        "iflag=skip_bytes,count_bytes", "conv=sparse", "status=none"])
    return out


def tool(name):
    return shutil.which(name) or os.path.exists(f"/usr/sbin/{name}")
