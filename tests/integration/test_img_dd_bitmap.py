"""kite img dd and kite img bitmap against qemu-img: each test runs the same command on kite and
on qemu-img, on copies of the same files in two directories (so paths in messages match), and
compares what a user sees: exit code, stdout, stderr (qemu-img's "qemu-img: " prefix is kite's
"kite: error: ", its "WARNING: " kite's "kite: warning: "), the output image's bytes and `qemu-img info`, and for bitmaps what QEMU itself
reads from them (qemu-nbd exports a bitmap, qemu-img map shows its dirty extents)."""
import json
import os
import re
import shutil
import struct
import tempfile

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
    stderr = re.sub(r"^WARNING: ", "kite: warning: ", stderr, flags=re.M)
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


# ---- bitmaps: helpers ----

def dirty_extents(img, bitmap):
    """What QEMU reads from bitmap `bitmap`: qemu-nbd exports it, qemu-img map shows the dirty
    extents (reported as "data": false) as (start, length) pairs."""
    sockdir = tempfile.mkdtemp(prefix="kbm", dir="/tmp")
    sock, pidfile = os.path.join(sockdir, "s"), os.path.join(sockdir, "pid")
    try:
        sh("qemu-nbd", "--fork", "--pid-file", pidfile, "-r", "-f", "qcow2", "-B", bitmap,
           "-k", sock, img)
        out = sh("qemu-img", "map", "--output=json", "--image-opts",
                 f"driver=nbd,server.type=unix,server.path={sock},"
                 f"x-dirty-bitmap=qemu:dirty-bitmap:{bitmap}")
        return [(e["start"], e["length"]) for e in json.loads(out) if not e["data"]]
    finally:
        try:
            with open(pidfile) as f:
                os.kill(int(f.read()), 15)
        except (OSError, ValueError):
            pass
        shutil.rmtree(sockdir, ignore_errors=True)


def bitmaps_of(img):
    data = info(img)["format-specific"]["data"]
    return data.get("bitmaps", [])


def same_bitmaps(t, img):
    """kite's image and qemu-img's list the same bitmaps, QEMU reads the same bits from each
    (consistent) one, and kite's image is clean."""
    mine, theirs = bitmaps_of(t.k / img), bitmaps_of(t.q / img)
    assert mine == theirs
    check_clean(t.k / img)
    for bm in mine:
        if "in-use" not in bm["flags"]:
            assert dirty_extents(t.k / img, bm["name"]) == \
                dirty_extents(t.q / img, bm["name"]), bm["name"]
    return mine


def qcow2_image(size="16M", opts=None, writes=(), bitmaps=()):
    def make(path):
        sh("qemu-img", "create", "-q", "-f", "qcow2", *(["-o", opts] if opts else []), path,
           size)
        for *flags, name in bitmaps:
            sh("qemu-img", "bitmap", *flags, path, name)
        if writes:
            sh("qemu-io", *sum((["-c", w] for w in writes), []), path)
    return make


def write_both(t, img, *writes):
    """qemu-io writes the same data into both images (QEMU marks the enabled bitmaps)."""
    for d in (t.k, t.q):
        sh("qemu-io", *sum((["-c", w] for w in writes), []), d / img)


def set_bitmap_flags(img, name, flags):
    """Sets a directory entry's flags by hand: 1 is "in-use", what a writer that died leaves."""
    with open(img, "r+b") as f:
        hdr = f.read(4096)
        off = struct.unpack(">I", hdr[100:104])[0]
        while True:
            kind, length = struct.unpack(">II", hdr[off:off + 8])
            assert kind, "no bitmaps extension"
            if kind == 0x23852875:
                nb, _, _, doff = struct.unpack(">IIQQ", hdr[off + 8:off + 32])
                break
            off += 8 + (length + 7) // 8 * 8
        for _ in range(nb):
            f.seek(doff)
            entry = f.read(24)
            namelen = struct.unpack(">H", entry[18:20])[0]
            if f.read(namelen).decode() == name:
                f.seek(doff + 12)
                f.write(struct.pack(">I", flags))
                return
            doff += (24 + namelen + 7) // 8 * 8
    raise AssertionError(name + " not found")


# ---- kite writing images that have bitmaps ----

def bitmap_image(writes=("write -P 0x11 0 3M",)):
    """Two enabled bitmaps (64k and 512 bytes) and a disabled one, dirtied by qemu-io."""
    return qcow2_image(size="64M", writes=list(writes) + ["write -P 0x22 1M 2M"],
                       bitmaps=[["--add", "b0"], ["--add", "-g", "512", "b1"],
                                ["--add", "off"], ["--disable", "off"]])


def raw_source(path):
    path.write_bytes(bytes(64 << 20))
    sh("qemu-io", "-f", "raw", "-c", "write -P 0x33 5M 1M", "-c", "write -P 0x44 40M 64k", path)


def top_over_a(path):
    """An overlay of a.qcow2 (beside it) with data of its own and a bitmap."""
    sh("qemu-img", "create", "-q", "-f", "qcow2", "-b", "a.qcow2", "-F", "qcow2", path)
    sh("qemu-io", "-c", "write -P 0x55 100k 30k", "-c", "write -z 9M 64k", path)
    sh("qemu-img", "bitmap", "--add", path, "top")


@pytest.mark.parametrize("verb", [
    ["resize", "a.qcow2", "128M"],
    ["resize", "--shrink", "a.qcow2", "2M"],
    ["resize", "a.qcow2", "+100000k"],
    ["snapshot", "-c", "s1", "a.qcow2"],
    ["rebase", "-u", "-b", "", "a.qcow2"],
    ["check", "-r", "all", "a.qcow2"],
    ["convert", "-n", "-f", "raw", "-O", "qcow2", "src.raw", "a.qcow2"],
    ["convert", "-n", "-S", "0", "-f", "raw", "-O", "qcow2", "src.raw", "a.qcow2"],
    ["commit", "-d", "top.qcow2"],
    ["rebase", "-F", "raw", "-b", "src.raw", "top.qcow2"],
])
def test_writers_keep_bitmaps_as_qemu_img(kite, tmp_path, verb):
    """A verb that writes an image with bitmaps keeps them, and the enabled ones record what
    it wrote, as qemu-img's same verb leaves them (qemu-img check clean, the same bits)."""
    t = Twins(kite, tmp_path)
    t.put("a.qcow2", make=bitmap_image())
    t.put("src.raw", make=raw_source)
    t.put("top.qcow2", make=top_over_a)
    k, q = t.run(*verb)
    assert (k.returncode, k.stdout) == (q.returncode, q.stdout) == (0, q.stdout)
    for img in ("a.qcow2", "top.qcow2"):
        same_bitmaps(t, img)
        r = run(["qemu-img", "compare", t.k / img, t.q / img])
        assert r.returncode == 0, r.stdout + r.stderr


def test_snapshot_revert_refused_with_bitmaps(kite, tmp_path):
    """qemu-img will not revert an image with bitmaps (they would not see the change)."""
    t = Twins(kite, tmp_path)
    t.put("a.qcow2", make=bitmap_image())
    t.same("snapshot", "-c", "s1", "a.qcow2", rc=0)
    write_both(t, "a.qcow2", "write -P 0x66 0 1M")
    k, q = t.run("snapshot", "-a", "s1", "a.qcow2")
    assert k.returncode == q.returncode == 1
    assert "Device has active dirty bitmaps" in k.stderr
    assert "Device has active dirty bitmaps" in q.stderr
    same_bitmaps(t, "a.qcow2")
    r = run(["qemu-img", "compare", t.k / "a.qcow2", t.q / "a.qcow2"])
    assert r.returncode == 0, r.stdout


def test_resize_refused_with_an_inconsistent_bitmap(kite, tmp_path):
    t = Twins(kite, tmp_path)
    t.put("a.qcow2", make=bitmap_image())
    for d in (t.k, t.q):
        set_bitmap_flags(d / "a.qcow2", "b1", 3)
    t.same("resize", "a.qcow2", "128M", rc=1)
    assert info(t.k / "a.qcow2")["virtual-size"] == 64 << 20
    same_bitmaps(t, "a.qcow2")


def test_writer_drops_an_unsound_bitmap_directory(kite, tmp_path):
    """A bitmap directory QEMU would refuse (here a reserved flag set): kite says so and drops
    the bitmaps before it writes; their clusters stay leaked (`check -r leaks` frees them),
    nothing else is touched."""
    img = tmp_path / "a.qcow2"
    bitmap_image()(img)
    sh("qemu-img", "convert", "-O", "raw", img, tmp_path / "before.raw")
    set_bitmap_flags(img, "b1", 0x10)
    r = run([kite, "img", "resize", str(img), "128M"])
    assert r.returncode == 0, r.stderr
    assert "the persistent bitmaps are dropped" in r.stderr
    assert bitmaps_of(img) == []
    q = run(["qemu-img", "check", str(img)])
    assert q.returncode in (0, 3) and "ERROR" not in q.stdout + q.stderr, q.stdout + q.stderr
    sh("qemu-img", "convert", "-O", "raw", img, tmp_path / "after.raw")
    assert (tmp_path / "after.raw").read_bytes()[:64 << 20] == \
        (tmp_path / "before.raw").read_bytes()


def test_kite_guest_writes_are_in_the_bitmaps(kite, tmp_path):
    """kite guest writes through the same block layer as kite run's virtio-blk: every block
    whose bytes changed is dirty in the enabled bitmaps, the disabled one stays clean, and
    nothing is left in use."""
    raw = tmp_path / "fs.raw"
    with open(raw, "wb") as f:
        f.truncate(32 << 20)
    sh("mke2fs", "-q", "-F", "-t", "ext4", raw)
    img = tmp_path / "fs.qcow2"
    sh("qemu-img", "convert", "-f", "raw", "-O", "qcow2", raw, img)
    for args in (["--add"], ["--add", "-g", "4k"], ["--add", "--disable"]):
        sh("qemu-img", "bitmap", *args, img, {1: "on", 3: "fine"}.get(len(args), "off"))
    before = (tmp_path / "before.raw")
    sh("qemu-img", "convert", "-O", "raw", img, before)
    r = run([kite, "guest", "write", str(img), "/motd"], input="x" * 300000)
    assert r.returncode == 0, r.stderr
    r = run([kite, "guest", "mkdir", str(img), "/srv"])
    assert r.returncode == 0, r.stderr
    after = tmp_path / "after.raw"
    sh("qemu-img", "convert", "-O", "raw", img, after)
    old, new = before.read_bytes(), after.read_bytes()
    changed = [o for o in range(0, len(new), 4096) if old[o:o + 4096] != new[o:o + 4096]]
    assert changed
    check_clean(img)
    assert [b["flags"] for b in bitmaps_of(img)] == [["auto"], ["auto"], []]
    for name in ("on", "fine"):
        dirty = dirty_extents(img, name)
        for o in changed:
            assert any(s <= o and o + 4096 <= s + n for s, n in dirty), (name, o, dirty)
    assert dirty_extents(img, "off") == []


# ---- kite img bitmap ----

@pytest.fixture
def bm(kite, tmp_path):
    t = Twins(kite, tmp_path)
    t.put("a.qcow2", make=qcow2_image(writes=["write -P 1 0 1M"]))
    return t


@pytest.mark.parametrize("opts,add", [
    (None, []),
    (None, ["-g", "512"]),
    (None, ["-g", "2M"]),
    (None, ["-g", "2G"]),
    (None, ["-g", "4G+64k"]),  # qemu-img keeps the low 32 bits: not a size, an error
    (None, ["--granularity", "128k"]),
    ("cluster_size=512", []),  # default granularity: the cluster size within 4k..64k
    ("cluster_size=8k", []),
    ("cluster_size=2M", []),
])
def test_bitmap_add(kite, tmp_path, opts, add):
    t = Twins(kite, tmp_path)
    t.put("a.qcow2", make=qcow2_image(opts=opts))
    t.same("bitmap", "--add", *add, "a.qcow2", "b0")
    write_both(t, "a.qcow2", "write 0 4k", "write 5M 300k", "write -z 9M 64k")
    same_bitmaps(t, "a.qcow2")


def test_bitmap_kite_made_bits_read_by_qemu(bm):
    """Bits in several data clusters (512-byte clusters, 512-byte granularity): QEMU reads
    back what kite stored, and kite keeps what QEMU stored."""
    bm.put("s.qcow2", make=qcow2_image(size="8M", opts="cluster_size=512"))
    bm.same("bitmap", "--add", "-g", "512", "s.qcow2", "fine")
    write_both(bm, "s.qcow2", "write 0 512", "write 1M 3k", "write 7M 1M")
    bm.same("bitmap", "--add", "-g", "4k", "s.qcow2", "coarse")
    bm.same("bitmap", "--merge", "fine", "s.qcow2", "coarse")
    bm.same("bitmap", "--disable", "s.qcow2", "fine")
    write_both(bm, "s.qcow2", "write 2M 64k")
    assert same_bitmaps(bm, "s.qcow2") == [
        {"flags": [], "name": "fine", "granularity": 512},
        {"flags": ["auto"], "name": "coarse", "granularity": 4096}]


def test_bitmap_disable_enable_clear(bm):
    bm.same("bitmap", "--add", "a.qcow2", "b0", rc=0)
    bm.same("bitmap", "--add", "-g", "4k", "a.qcow2", "b1", rc=0)
    write_both(bm, "a.qcow2", "write 64k 4k")
    bm.same("bitmap", "--disable", "a.qcow2", "b0", rc=0)
    write_both(bm, "a.qcow2", "write 2M 64k")
    bm.same("bitmap", "--disable", "a.qcow2", "b0", rc=0)  # twice is fine
    same_bitmaps(bm, "a.qcow2")
    bm.same("bitmap", "--enable", "a.qcow2", "b0", rc=0)
    bm.same("bitmap", "--clear", "a.qcow2", "b1", rc=0)
    write_both(bm, "a.qcow2", "write 8M 4k")
    same_bitmaps(bm, "a.qcow2")


def test_bitmap_remove_frees_its_clusters(bm):
    bm.same("bitmap", "--add", "-g", "512", "a.qcow2", "big", rc=0)
    bm.same("bitmap", "--add", "a.qcow2", "other", rc=0)
    write_both(bm, "a.qcow2", "write 0 16M")
    bm.same("bitmap", "--remove", "a.qcow2", "big", rc=0)
    assert same_bitmaps(bm, "a.qcow2") == [{"flags": ["auto"], "name": "other",
                                           "granularity": 65536}]
    bm.same("bitmap", "--remove", "a.qcow2", "other", rc=0)
    assert same_bitmaps(bm, "a.qcow2") == []  # check clean: nothing leaked
    with open(bm.k / "a.qcow2", "rb") as f:  # no bitmaps left: the autoclear bit is clear
        assert struct.unpack(">Q", f.read(96)[88:96])[0] == 0


@pytest.mark.parametrize("src_g,dst_g", [("64k", "64k"), ("4k", "64k"), ("64k", "4k"),
                                         ("512", "1M")])
def test_bitmap_merge_in_one_image(bm, src_g, dst_g):
    bm.same("bitmap", "--add", "-g", src_g, "a.qcow2", "src", rc=0)
    write_both(bm, "a.qcow2", "write 3k 2k", "write 1M 100k", "write 15M 1M")
    bm.same("bitmap", "--add", "-g", dst_g, "a.qcow2", "dst", rc=0)
    write_both(bm, "a.qcow2", "write 6M 4k")
    bm.same("bitmap", "--merge", "src", "a.qcow2", "dst", rc=0)
    same_bitmaps(bm, "a.qcow2")


def test_bitmap_merge_from_another_file(bm):
    bm.put("s.qcow2", make=qcow2_image(bitmaps=[["--add", "sb"]],
                                       writes=["write 0 64k", "write 7M 1M"]))
    bm.same("bitmap", "--add", "a.qcow2", "db", rc=0)
    bm.same("bitmap", "--merge", "sb", "-b", "s.qcow2", "a.qcow2", "db", rc=0)
    bm.same("bitmap", "--merge", "sb", "-b", "s.qcow2", "-F", "qcow2", "a.qcow2", "db", rc=0)
    bm.same("bitmap", "--merge", "sb", "--source-file", "s.qcow2", "--source-format",
            "qcow2", "a.qcow2", "db", rc=0)
    same_bitmaps(bm, "a.qcow2")
    assert bitmaps_of(bm.k / "s.qcow2") == bitmaps_of(bm.q / "s.qcow2")  # source unchanged


def test_bitmap_several_actions_run_in_order(bm):
    bm.same("bitmap", "--add", "a.qcow2", "b0", rc=0)
    write_both(bm, "a.qcow2", "write 0 64k")
    bm.same("bitmap", "--add", "--clear", "--disable", "--enable", "--merge", "b0",
            "a.qcow2", "b1", rc=0)
    bm.same("bitmap", "--add", "-g", "1M", "--disable", "a.qcow2", "b2", rc=0)
    bm.same("bitmap", "--add", "--remove", "a.qcow2", "gone", rc=0)
    same_bitmaps(bm, "a.qcow2")


def test_bitmap_actions_before_a_failure_stay_done(bm):
    bm.same("bitmap", "--add", "--add", "a.qcow2", "twice", rc=1)
    bm.same("bitmap", "--add", "--merge", "nosuch", "a.qcow2", "b1", rc=1)
    assert [b["name"] for b in same_bitmaps(bm, "a.qcow2")] == ["twice", "b1"]


@pytest.mark.parametrize("args", [
    ["--add", "a.qcow2", "b0"],  # exists
    ["--add", "-g", "100k", "a.qcow2", "x"],
    ["--add", "-g", "256", "a.qcow2", "x"],
    ["--add", "-g", "4G", "a.qcow2", "x"],
    ["--add", "-g", "abc", "a.qcow2", "x"],
    ["--add", "-g", "1KiB", "a.qcow2", "x"],
    ["--add", "-g", "0", "a.qcow2", "b0"],  # 0: the default
    ["--add", "a.qcow2", ""],
    ["--add", "a.qcow2", "n" * 1024],
    ["--remove", "a.qcow2", "nosuch"],
    ["--clear", "a.qcow2", "nosuch"],
    ["--enable", "a.qcow2", "nosuch"],
    ["--disable", "a.qcow2", "nosuch"],
    ["--merge", "nosuch", "a.qcow2", "b0"],
    ["--merge", "b0", "a.qcow2", "nosuch"],
    ["--merge", "b0", "-b", "a8.qcow2", "a.qcow2", "b0"],  # sizes differ
    ["--merge", "b0", "-b", "a.raw", "a.qcow2", "b0"],
    ["--merge", "b0", "-b", "a8.qcow2", "-F", "raw", "a.qcow2", "b0"],
    ["--remove", "-g", "64k", "a.qcow2", "b0"],
    ["-F", "qcow2", "--merge", "b0", "a.qcow2", "b0"],
    ["-b", "a8.qcow2", "--add", "a.qcow2", "b0"],
    ["a.qcow2", "b0"],
    ["--add", "a.qcow2"],
    ["--add", "a.qcow2", "b0", "extra"],
    ["--add", "-f", "qcow2", "--image-opts", "driver=qcow2,file.filename=a.qcow2", "x"],
])
def test_bitmap_errors(bm, args):
    bm.put("a8.qcow2", make=qcow2_image(size="8M", bitmaps=[["--add", "b0"]]))
    bm.put("a.raw", bytes(1 << 20))
    bm.same("bitmap", "--add", "a.qcow2", "b0", rc=0)
    before = bitmaps_of(bm.k / "a.qcow2")
    k = bm.same("bitmap", *args, names=["a.qcow2"])
    if k.returncode:
        assert bitmaps_of(bm.k / "a.qcow2") == before
    same_bitmaps(bm, "a.qcow2")


@pytest.mark.parametrize("args", [
    ["--add", "-f", "raw", "a.qcow2", "x"],
    ["--remove", "-f", "raw", "a.qcow2", "x"],
    ["--add", "a.raw", "x"],  # probed raw: the warning, then the error
    ["--merge", "x", "a.raw", "x"],
    ["--add", "-f", "raw", "--object", "secret,id=s0,data=x", "a.raw", "x"],
])
def test_bitmap_formats_without_bitmaps(bm, args):
    bm.put("a.raw", bytes(1 << 20))
    bm.same("bitmap", *args, rc=1, names=[args[-2]])


def test_bitmap_files_that_cannot_be_opened(bm):
    """Exit code 1 and nothing changed; kite words why in its own terms (see README)."""
    bm.same("bitmap", "--add", "a.qcow2", "b0", rc=0)
    for args in (["--add", "nonexist", "x"], ["--merge", "b0", "-b", "nonexist", "a.qcow2", "b0"],
                 ["--add", "-f", "vmdk", "a.qcow2", "x"]):
        k, q = bm.run("bitmap", *args)
        assert k.returncode == q.returncode == 1
        assert k.stderr.startswith("kite: error: ")
    same_bitmaps(bm, "a.qcow2")


def test_bitmap_v2_image(kite, tmp_path):
    t = Twins(kite, tmp_path)
    t.put("v2.qcow2", make=qcow2_image(opts="compat=0.10"))
    t.same("bitmap", "--add", "v2.qcow2", "x", rc=1, names=["v2.qcow2"])
    t.same("bitmap", "--remove", "v2.qcow2", "x", rc=1)
    assert (t.k / "v2.qcow2").read_bytes() == (t.q / "v2.qcow2").read_bytes()


def test_bitmap_image_opts(bm):
    bm.same("bitmap", "--add", "--image-opts", "driver=qcow2,file.filename=a.qcow2", "x",
            rc=0)
    same_bitmaps(bm, "a.qcow2")


def test_bitmap_in_use_is_inconsistent(bm):
    """A bitmap left "in-use" (its writer died) cannot be used, only removed."""
    bm.same("bitmap", "--add", "a.qcow2", "dead", rc=0)
    bm.same("bitmap", "--add", "a.qcow2", "ok", rc=0)
    for d in (bm.k, bm.q):
        set_bitmap_flags(d / "a.qcow2", "dead", 3)
    for args in (["--clear"], ["--enable"], ["--disable"], ["--merge", "ok"]):
        bm.same("bitmap", *args, "a.qcow2", "dead", rc=1)
    bm.same("bitmap", "--merge", "dead", "a.qcow2", "ok", rc=1)
    bm.same("bitmap", "--add", "a.qcow2", "dead", rc=1)
    write_both(bm, "a.qcow2", "write 0 64k")
    same_bitmaps(bm, "a.qcow2")
    bm.same("bitmap", "--remove", "a.qcow2", "dead", rc=0)
    assert [b["name"] for b in same_bitmaps(bm, "a.qcow2")] == ["ok"]


def test_bitmap_in_help(kite):
    r = run([kite, "img", "--help"])
    assert "  bitmap (--merge SOURCE | --add | --remove | --clear | --enable | --disable)... " \
        "[-b source_file [-F source_fmt]] [-g granularity] [--object objectdef] " \
        "[--image-opts | -f fmt] filename bitmap\n" in r.stdout
