"""kite img never touches an image another process uses: every verb against qemu-img on the same
image while qemu-io (a VM's stand-in) holds it, the same exit code and message after the prefix,
and the image's bytes unchanged. Read verbs work with -U as qemu-img's do."""
import hashlib
import os
import subprocess
import time

import pytest

from conftest import run

QEMU_PREFIX = "qemu-img: "
KITE_PREFIX = "kite: error: "


def sh(*argv):
    r = run([str(a) for a in argv])
    assert r.returncode == 0, " ".join(map(str, argv)) + "\n" + r.stdout + r.stderr
    return r.stdout


def digest(path):
    return hashlib.sha256(open(path, "rb").read()).hexdigest()


class Holder:
    """qemu-io with the image open (read-write unless `ro`), as a running VM holds its disk."""

    def __init__(self, path, fmt, ro=False):
        argv = ["qemu-io", "-f", fmt] + (["-r"] if ro else []) + [str(path)]
        self.proc = subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                     stderr=subprocess.PIPE, text=True)
        # once qemu-io answers a command it has opened (and locked) the image
        self.proc.stdin.write("help\n")
        self.proc.stdin.flush()
        assert self.proc.stdout.readline(), self.proc.stderr.read()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.proc.stdin.close()
        self.proc.wait(timeout=30)


@pytest.fixture
def images(tmp_path):
    os.chdir(tmp_path)
    sh("qemu-img", "create", "-q", "-f", "raw", "base.raw", "8M")
    sh("qemu-io", "-f", "raw", "-c", "write -P 7 0 1M", "base.raw")
    sh("qemu-img", "create", "-q", "-f", "qcow2", "-b", "base.raw", "-F", "raw", "vm01.qcow2")
    sh("qemu-io", "-f", "qcow2", "-c", "write -P 9 1M 1M", "vm01.qcow2")
    sh("qemu-img", "create", "-q", "-f", "raw", "other.raw", "8M")
    return tmp_path


def errors(r, prefix):
    """stderr with the program's prefix taken off each line that has it."""
    return "".join(line[len(prefix):] if line.startswith(prefix) else line
                   for line in r.stderr.splitlines(True))


# Verbs that write vm01.qcow2 (qemu: 'Failed to get "write" lock') and those that only read
# it (qemu: 'Failed to get shared "write" lock').
WRITERS = [
    ["snapshot", "-c", "s1", "vm01.qcow2"],
    ["snapshot", "-d", "s1", "vm01.qcow2"],
    ["snapshot", "-a", "s1", "vm01.qcow2"],
    ["check", "-r", "all", "vm01.qcow2"],
    ["check", "-r", "leaks", "vm01.qcow2"],
    ["convert", "-n", "-f", "raw", "-O", "qcow2", "other.raw", "vm01.qcow2"],
    ["resize", "vm01.qcow2", "+1M"],
    ["commit", "vm01.qcow2"],
    ["commit", "-b", "base.raw", "vm01.qcow2"],
    ["rebase", "-u", "-b", "other.raw", "-F", "raw", "vm01.qcow2"],
    ["rebase", "-b", "other.raw", "-F", "raw", "vm01.qcow2"],
    ["create", "-f", "qcow2", "vm01.qcow2", "1M"],
]
READERS = [
    ["info", "vm01.qcow2"],
    ["info", "--backing-chain", "vm01.qcow2"],
    ["check", "vm01.qcow2"],
    ["snapshot", "-l", "vm01.qcow2"],
    ["map", "vm01.qcow2"],
    ["measure", "-O", "qcow2", "vm01.qcow2"],
    ["compare", "vm01.qcow2", "base.raw"],
    ["convert", "-O", "raw", "vm01.qcow2", "out.raw"],
]


@pytest.mark.parametrize("argv", WRITERS + READERS, ids=lambda a: "-".join(a[:2]))
def test_an_image_in_use_is_refused_as_qemu_img_refuses(kite, images, argv):
    before = digest("vm01.qcow2"), digest("base.raw")
    with Holder("vm01.qcow2", "qcow2"):
        q = run(["qemu-img"] + argv)
        k = run([kite, "img"] + argv)
    assert q.returncode != 0, q.stdout
    assert k.returncode == q.returncode, k.stderr
    assert k.stderr.startswith(KITE_PREFIX), k.stderr
    # create prints its "Formatting" line first, as qemu-img does
    assert k.stdout == q.stdout
    assert errors(k, KITE_PREFIX) == errors(q, QEMU_PREFIX)
    assert "Is another process using the image [vm01.qcow2]?" in k.stderr
    assert (digest("vm01.qcow2"), digest("base.raw")) == before
    assert not os.path.exists("out.raw")


@pytest.mark.parametrize("argv", READERS, ids=lambda a: "-".join(a[:2]))
def test_force_share_reads_an_image_in_use(kite, images, argv):
    argv = argv[:1] + ["-U"] + argv[1:]
    with Holder("vm01.qcow2", "qcow2"):
        q = run(["qemu-img"] + argv)
        if argv[0] == "convert":
            os.rename("out.raw", "qemu.raw")
        k = run([kite, "img"] + argv)
    assert (k.returncode, k.stdout) == (q.returncode, q.stdout), k.stderr
    assert k.returncode in (0, 1), k.stderr  # compare: 1 when the images differ
    if argv[0] == "convert":
        assert digest("out.raw") == digest("qemu.raw")


@pytest.mark.parametrize("argv", [["snapshot", "-U", "-c", "s", "vm01.qcow2"],
                                  ["check", "-U", "-r", "all", "vm01.qcow2"]],
                         ids=["snapshot", "check"])
def test_force_share_is_refused_for_writes(kite, images, argv):
    before = digest("vm01.qcow2")
    q, k = run(["qemu-img"] + argv), run([kite, "img"] + argv)
    assert q.returncode == k.returncode == 1
    assert errors(k, KITE_PREFIX) == errors(q, QEMU_PREFIX)
    assert "force-share=on can only be used with read-only images" in k.stderr
    assert digest("vm01.qcow2") == before


def test_a_reader_lets_readers_in_and_keeps_writers_out(kite, images):
    with Holder("vm01.qcow2", "qcow2", ro=True):
        for argv in READERS[:3]:
            k = run([kite, "img"] + argv)
            assert k.returncode == 0, (argv, k.stderr)
        k = run([kite, "img", "snapshot", "-c", "s1", "vm01.qcow2"])
        q = run(["qemu-img", "snapshot", "-c", "s1", "vm01.qcow2"])
        assert k.returncode == q.returncode == 1
        assert errors(k, KITE_PREFIX) == errors(q, QEMU_PREFIX)


def test_kite_holds_the_whole_chain_against_qemu(kite, images):
    """While kite uses an image (here `kite guest mount`; a kite VM locks the same way),
    neither qemu-img, qemu-io nor kite may write it or its backing file: kite keeps backing
    files from writers, which QEMU itself does not always do."""
    sh("qemu-img", "create", "-q", "-f", "raw", "fs.raw", "16M")
    sh("mkfs.ext4", "-q", "-F", "fs.raw")
    sh("qemu-img", "create", "-q", "-f", "qcow2", "-b", "fs.raw", "-F", "raw", "top.qcow2")
    if not os.path.exists("/dev/fuse"):
        pytest.skip("no /dev/fuse")
    os.mkdir("mnt")
    proc = subprocess.Popen([kite, "guest", "mount", "top.qcow2", "mnt", "-f"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.time() + 30
        while not os.path.ismount("mnt"):
            assert proc.poll() is None, proc.stderr.read()
            assert time.time() < deadline, "mount did not appear"
            time.sleep(0.05)
        base = digest("fs.raw")
        for argv in (["qemu-io", "-f", "raw", "-c", "write 0 512", "fs.raw"],
                     ["qemu-img", "resize", "-f", "raw", "fs.raw", "32M"],
                     [kite, "img", "resize", "-f", "raw", "fs.raw", "32M"],
                     [kite, "img", "commit", "top.qcow2"],
                     ["qemu-img", "info", "top.qcow2"],
                     [kite, "img", "info", "top.qcow2"]):
            r = run(argv)
            assert r.returncode != 0, argv
            assert "lock" in r.stderr, (argv, r.stderr)
        assert digest("fs.raw") == base
        # -U reads what the mount holds
        assert run([kite, "img", "info", "-U", "top.qcow2"]).returncode == 0
    finally:
        run(["fusermount3", "-u", "mnt"])
        proc.wait(timeout=60)
    assert proc.returncode == 0, proc.stderr.read()
    # and once it is gone, the images are free again
    sh(kite, "img", "resize", "-f", "raw", "fs.raw", "32M")
