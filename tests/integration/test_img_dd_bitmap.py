"""kite img dd and kite img bitmap against qemu-img: each test runs the same command on kite and
on qemu-img, on copies of the same files in two directories (so paths in messages match), and
compares what a user sees: exit code, stdout, stderr (qemu-img's "qemu-img: " prefix is kite's
"kite: error: "), the output image's bytes and `qemu-img info`, and for bitmaps what QEMU itself
reads from them (qemu-nbd exports a bitmap, qemu-img map shows its dirty extents)."""
import json
import os
import re
import shutil
import struct
import subprocess

import pytest

from conftest import run


def sh(*argv, cwd=None):
    r = run([str(a) for a in argv], cwd=cwd)
    assert r.returncode == 0, " ".join(map(str, argv)) + "\n" + r.stdout + r.stderr
    return r.stdout


def as_kite(stderr, names=()):
    """qemu-img's stderr as kite words it: the "qemu-img: " prefix becomes "kite: error: ", and
    QEMU's node names (#block123, unknowable in advance) become the file names kite prints."""
    for name in names:
        stderr = re.sub(r"#block\d+", name, stderr, count=1)
    return re.sub(r"^qemu-img: ", "kite: error: ", stderr, flags=re.M)


class Twins:
    """Two directories with the same files: kite works in one, qemu-img in the other."""

    def __init__(self, kite, tmp_path):
        self.kite = kite
        self.k, self.q = tmp_path / "kite", tmp_path / "qemu"
        self.k.mkdir()
        self.q.mkdir()

    def put(self, name, data=None, make=None):
        """A file in both directories: `data`, or what `make(path)` creates, copied."""
        if make:
            make(self.q / name)
        else:
            (self.q / name).write_bytes(data)
        shutil.copyfile(self.q / name, self.k / name)

    def run(self, *args, names=()):
        """(kite's result, qemu-img's result), qemu-img's stderr in kite's words."""
        k = run([self.kite, "img", *map(str, args)], cwd=self.k)
        q = run(["qemu-img", *map(str, args)], cwd=self.q)
        q.stderr = as_kite(q.stderr, names)
        return k, q

    def same(self, *args, rc=None, names=()):
        k, q = self.run(*args, names=names)
        assert (k.returncode, k.stdout, k.stderr) == (q.returncode, q.stdout, q.stderr), args
        if rc is not None:
            assert k.returncode == rc, args
        return k


def info(path):
    out = json.loads(sh("qemu-img", "info", "--output=json", path))
    for key in ("filename", "actual-size"):
        out.pop(key, None)
    return out


def check_clean(path):
    r = run(["qemu-img", "check", str(path)])
    assert r.returncode == 0, r.stdout + r.stderr
    assert "No errors were found on the image." in r.stdout


# ---- dd ----

INPUT = bytes(range(256)) * 11719 + b"tail"  # 3000068 bytes: not a whole number of sectors


@pytest.fixture
def dd(kite, tmp_path):
    t = Twins(kite, tmp_path)
    t.put("in.raw", INPUT)
    t.put("in.qcow2", make=lambda p: sh("qemu-img", "convert", "-f", "raw", "-O", "qcow2",
                                        p.parent / "in.raw", p))
    return t


def dd_same_output(t, *args, out="out.raw"):
    t.same("dd", *args, rc=0)
    assert (t.k / out).read_bytes() == (t.q / out).read_bytes()
    assert info(t.k / out) == info(t.q / out)


@pytest.mark.parametrize("ops", [
    [],
    ["bs=1M"],
    ["bs=1M", "count=2", "skip=1"],  # count counts the skipped blocks too, as in qemu-img
    ["bs=4k", "skip=3"],
    ["bs=1023", "count=1"],  # the output is whole sectors
    ["bs=1.5M", "count=1"],
    ["bs=64k", "count=0"],
    ["count=1k"],
    ["bs=0x1000", "count=3", "skip=2"],
    ["bs=1M", "bs=2M", "count=1"],  # the last one counts
])
def test_dd_copies_as_qemu_img(dd, ops):
    dd_same_output(dd, "-f", "raw", *ops, "if=in.raw", "of=out.raw")


def test_dd_qcow2_in_and_out(dd):
    dd.same("dd", "-O", "qcow2", "bs=64k", "count=10", "skip=2", "if=in.qcow2", "of=o.qcow2",
            rc=0)
    r = run(["qemu-img", "compare", dd.k / "o.qcow2", dd.q / "o.qcow2"])
    assert r.returncode == 0, r.stdout + r.stderr
    assert info(dd.k / "o.qcow2") == info(dd.q / "o.qcow2")
    assert sh("qemu-img", "map", "--output=json", dd.k / "o.qcow2") == \
        sh("qemu-img", "map", "--output=json", dd.q / "o.qcow2")
    check_clean(dd.k / "o.qcow2")


def test_dd_options_after_operands_and_probing(dd):
    """getopt permutes: options may follow the operands; a probed raw input gives no warning
    (qemu-img warns only when it writes such an image)."""
    dd_same_output(dd, "if=in.raw", "of=out.raw", "bs=4k", "-O", "raw", "count=5")


def test_dd_image_opts_and_force_share(dd):
    dd_same_output(dd, "--image-opts", "-U", "if=driver=raw,file.filename=in.raw", "of=out.raw",
                   "bs=8k", "count=7")
    dd.same("dd", "--image-opts", "-f", "raw", "if=driver=raw,file.filename=in.raw", "of=x",
            rc=1)


def test_dd_skip_past_the_end(dd):
    """An empty output, the message, and exit code 0."""
    dd_same_output(dd, "-f", "raw", "bs=1M", "skip=3", "if=in.raw", "of=out.raw")
    dd_same_output(dd, "-f", "raw", "skip=100000", "if=in.raw", "of=out.raw")


@pytest.mark.parametrize("ops", [
    ["bs=0"],
    ["bs=abc"],
    ["bs="],
    ["bs=3G"],
    ["bs=2147483648"],
    ["bs=1E"],
    ["bs=1KiB"],
    ["count=-1"],
    ["count=99999999999999999999999"],
    ["count=8E"],
    ["skip=abc"],
    ["skip=1.5"],
    ["foo=bar"],
    ["=x"],
    ["bs"],
    ["extra"],
])
def test_dd_bad_operands(dd, ops):
    dd.same("dd", "if=in.raw", "of=out.raw", *ops, rc=1)
    assert not (dd.k / "out.raw").exists()


@pytest.mark.parametrize("args", [
    ["if=in.raw"],
    ["of=out.raw"],
    [],
    ["-O", "foo", "if=in.raw", "of=out.raw"],
    ["-f", "qcow2", "-O", "foo", "if=in.qcow2", "of=out.raw"],
])
def test_dd_missing_files_and_unknown_format(dd, args):
    dd.same("dd", *args, rc=1)


def test_dd_input_errors_keep_exit_code(dd):
    """The input is opened before anything else: an input kite cannot open fails with exit
    code 1 and creates nothing (kite's own words for why, see README)."""
    for args in (["if=nonexist", "of=out.raw"], ["-f", "qcow2", "if=in.raw", "of=out.raw"]):
        k, q = dd.run("dd", *args)
        assert k.returncode == q.returncode == 1
        assert k.stderr.startswith("kite: error: ")
        assert not (dd.k / "out.raw").exists()


def test_dd_refuses_to_truncate_its_input(kite, tmp_path):
    """qemu-img dd if=x of=x creates x anew, destroying the input; kite refuses."""
    img = tmp_path / "same.raw"
    img.write_bytes(INPUT)
    r = run([kite, "img", "dd", "-f", "raw", f"if={img}", f"of={img}"])
    assert r.returncode == 1
    assert "is the same file as the input" in r.stderr
    assert img.read_bytes() == INPUT


def test_dd_in_help(kite):
    r = run([kite, "img", "--help"])
    assert "  dd [--image-opts] [-U] [-f fmt] [-O output_fmt] [bs=block_size] [count=blocks] " \
        "[skip=blocks] if=input of=output\n" in r.stdout
