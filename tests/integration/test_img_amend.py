"""kite img amend against qemu-img 7.2: the same command on two copies of an image, one for
each; the same stdout, stderr (after the program's prefix), exit code and `qemu-img info`, a
result qemu-img check finds clean, the same guest data (and snapshots), and, where qemu-img
leaves the image byte for byte in a state kite reproduces, the same bytes. A refused amend
leaves kite's copy exactly as it was."""
import hashlib
import json
import os
import resource
import shutil
import signal
import struct
import subprocess

import pytest

from conftest import run

NAME = "img.qcow2"


def sh(*argv, cwd=None):
    r = run([str(a) for a in argv], cwd=cwd)
    assert r.returncode == 0, " ".join(map(str, argv)) + "\n" + r.stdout + r.stderr
    return r.stdout


def qio(path, *cmds):
    sh("qemu-io", *sum((["-c", c] for c in cmds), []), path)


def create(path, size="8M", opts=None, backing=None):
    args = ["qemu-img", "create", "-q", "-f", "qcow2"]
    args += ["-o", opts] if opts else []
    args += ["-b", backing, "-F", "qcow2"] if backing else []
    sh(*args, path, *([size] if size else []))
    return path


def digest(path):
    return hashlib.sha256(open(path, "rb").read()).hexdigest()


def stderr_lines(text, prefix):
    """stderr with the program's prefix taken off each line, kite's own name as qemu-img's."""
    out = [line[len(prefix):] if line.startswith(prefix) else line
           for line in text.splitlines(True)]
    return "".join(out).replace("'kite img ", "'qemu-img ")


def info(d):
    out = json.loads(sh("qemu-img", "info", "--output=json", NAME, cwd=d))
    out.pop("actual-size")  # the file system's allocation, not the image's
    return out


def check_clean(path):
    r = run(["qemu-img", "check", str(path)])
    assert r.returncode == 0 and "No errors were found" in r.stdout, r.stdout + r.stderr


def snapshot_raw(path, name, out):
    """The disk as snapshot `name` left it, at its own size (applied to a copy)."""
    copy = path.parent / "applied.qcow2"
    shutil.copyfile(path, copy)
    sh("qemu-img", "snapshot", "-a", name, copy)
    sh("qemu-img", "convert", "-O", "raw", copy, out)
    os.unlink(copy)
    return digest(out)


class Twins:
    """Two copies of a directory of images (`orig`), amended by kite and by qemu-img."""

    def __init__(self, tmp_path, kite):
        self.tmp, self.kite = tmp_path, kite
        self.orig = tmp_path / "orig"
        self.k, self.q = tmp_path / "kite", tmp_path / "qemu"

    def amend(self, *args, same_bytes=True, kite_flags=()):
        for d in (self.k, self.q):
            shutil.rmtree(d, ignore_errors=True)
            shutil.copytree(self.orig, d)
        before = digest(self.orig / NAME)
        k = run([self.kite, "img", "amend", *kite_flags, *args, NAME], cwd=self.k)
        q = run(["qemu-img", "amend", *args, NAME], cwd=self.q)
        what = f"amend {' '.join(args)}\nkite: {k.stdout}{k.stderr}\nqemu: {q.stdout}{q.stderr}"
        assert k.returncode == q.returncode, what
        assert k.stdout == q.stdout, what
        assert stderr_lines(k.stderr, "kite: error: ") == stderr_lines(q.stderr, "qemu-img: ")
        if k.returncode:
            assert digest(self.k / NAME) == before, "a refused amend changed the image"
        else:
            check_clean(self.k / NAME)
        assert info(self.k) == info(self.q), what
        assert run(["qemu-img", "compare", "-q", self.k / NAME, self.q / NAME]).returncode == 0
        if same_bytes:
            assert digest(self.k / NAME) == digest(self.q / NAME), what
        return k

    def snapshots_match(self, name, qemu_keeps_it=True):
        """Snapshot `name` reads after the amend as before it (in qemu-img's copy too,
        unless qemu-img damaged it)."""
        want = snapshot_raw(self.orig / NAME, name, self.tmp / "o.raw")
        assert snapshot_raw(self.k / NAME, name, self.tmp / "k.raw") == want
        q = snapshot_raw(self.q / NAME, name, self.tmp / "q.raw")
        assert (q == want) == qemu_keeps_it


@pytest.fixture
def twins(tmp_path, kite):
    (tmp_path / "orig").mkdir()
    return Twins(tmp_path, kite)


def rich_image(d, backing=False, opts=None, snapshot=True):
    """Data, zero clusters (plain and keeping their host cluster), compressed clusters, a
    snapshot whose own L2 table holds zero clusters, optionally over a backing file."""
    if backing:
        create(d / "base.qcow2")
        qio(d / "base.qcow2", "write -P 7 0 8M")
    img = create(d / NAME, opts=opts, backing="base.qcow2" if backing else None)
    qio(img, "write -P 1 0 256k", "write -z 256k 128k", "write -c -P 2 512k 128k",
        "write -z 1M 64k", "write -P 4 3M 64k")
    if snapshot:
        sh("qemu-img", "snapshot", "-c", "s1", img)
        qio(img, "write -P 3 1M 64k", "write -z 0 64k", "write -z 2M 128k", "write -z 3M 64k")
    return img


# ---- -o help and the options qcow2 amend does not take ----

def test_help(twins):
    create(twins.orig / NAME)
    r = twins.amend("-o", "help")
    assert r.stdout.startswith("Amend options for 'qcow2':\n  backing_file=<str>")
    twins.amend("-o", "?")
    twins.amend("-o", "size=1M,help")
    twins.amend("-f", "qcow2", "-o", "help")
    twins.amend("-f", "raw", "-o", "help")
    twins.amend("-f", "nonsense", "-o", "help")


@pytest.mark.parametrize("opts", [
    "cluster_size=4k", "preallocation=full", "compression_type=zstd", "extended_l2=on",
    "encrypt.format=luks", "encryption=on", "cluster_size=abc", "foo=1,cluster_size=4k",
    "cluster_size=4k,foo=1", "nofoo", "=5", "a,,b", "help=1",
    "size=abc", "size=-5", "size=1M,size=x", "size=1MiB", "size=1e6", "size=1.5",
    "size=0x1.5k", "size=16E", "size=99999999999999999999", "size=18446744073709551615",
    "size=9E", "size=9223372036854775296", "size=7E", "refcount_bits=abc", "refcount_bits=",
    "refcount_bits=3", "refcount_bits=128", "refcount_bits=-16", "lazy_refcounts=maybe",
    "lazy_refcounts=ON", "compat=0.11", "compat=", "compat", "data_file=x",
    "data_file_raw=on", "encrypt.keyslot=x", "encrypt.state=inactive", "", ",", "size=1M,",
])
def test_refused_options(twins, opts):
    create(twins.orig / NAME)
    assert twins.amend("-o", opts).returncode == 1


@pytest.mark.parametrize("opts", ["data_file_raw=off", "compat=1.1", "compat=v3",
                                  "refcount_bits=16", "refcount_bits=0x10", "size=0",
                                  "lazy_refcounts=off", "nolazy_refcounts"])
def test_options_that_change_nothing(twins, opts):
    rich_image(twins.orig)
    assert twins.amend("-o", opts).returncode == 0


# ---- compat ----

@pytest.mark.parametrize("backing", [False, True], ids=["alone", "backing"])
def test_downgrade_expands_zero_clusters(twins, backing):
    """Zero clusters become unallocated (nothing shows through) or clusters of zeros (a
    backing file would), in the active tables and the snapshot's, as qemu-img makes them."""
    rich_image(twins.orig, backing=backing)
    # A zero cluster kept its host cluster, whose data the snapshot still reads: qemu-img
    # zeroes that cluster (the snapshot loses its data) and marks it COPIED (its check then
    # reports it); kite gives the active table its own zero cluster. The bytes differ there.
    twins.amend("-o", "compat=0.10", same_bytes=False)
    q = run(["qemu-img", "check", str(twins.q / NAME)])
    assert "ERROR OFLAG_COPIED data cluster: l2_entry=8000000000050000 refcount=2" in q.stderr
    twins.snapshots_match("s1", qemu_keeps_it=False)
    m = json.loads(sh("qemu-img", "map", "--output=json", NAME, cwd=twins.k))
    assert not [e for e in m if e["zero"] and e["present"] and not e["data"]], m
    r = run(["qemu-io", "-c", "read -P 0 0 64k", "-c", "read -P 0 2M 128k",
             "-c", "read -P 2 512k 128k", "-c", "read -P 3 1M 64k", str(twins.k / NAME)])
    assert r.returncode == 0 and "verification failed" not in r.stdout, r.stdout


def test_downgrade_from_extended_lazy_and_zstd(twins):
    create(twins.orig / NAME, opts="compression_type=zstd,lazy_refcounts=on")
    qio(twins.orig / NAME, "write -P 1 0 64k", "write -z 64k 64k")
    twins.amend("-o", "compat=0.10")  # zstd without compressed clusters: back to zlib
    twins.amend("-o", "compat=0.10,lazy_refcounts=on")  # lazy already on: dropped


@pytest.mark.parametrize("setup,opts", [
    ("extended_l2", "compat=0.10"),
    ("refcount_bits=8", "compat=0.10"),
    ("plain", "compat=0.10,refcount_bits=8"),
    ("plain", "compat=0.10,lazy_refcounts=on"),
    ("snapshot_other_size", "compat=0.10"),
])
def test_downgrade_refused(twins, setup, opts):
    img = twins.orig / NAME
    if setup == "extended_l2":
        create(img, opts="extended_l2=on")
    elif setup == "refcount_bits=8":
        create(img, opts="refcount_bits=8")
    else:
        create(img)
    qio(img, "write -P 1 0 128k", "write -z 128k 64k")
    if setup.startswith("snapshot"):
        sh("qemu-img", "snapshot", "-c", "s1", img)
    if setup == "snapshot_other_size":
        sh("qemu-img", "resize", "-q", img, "16M")
    assert twins.amend("-o", opts).returncode == 1


def test_downgrade_refused_zstd_compressed(twins):
    """qemu-img expands the zero clusters (and shrinks, given size=) before it finds the
    compressed zstd cluster; kite refuses before changing anything."""
    create(twins.orig / NAME, opts="compression_type=zstd")
    qio(twins.orig / NAME, "write -c -P 2 0 64k", "write -z 64k 64k")
    assert twins.amend("-o", "compat=0.10", same_bytes=False).returncode == 1
    # compressed data beyond the new size would go: qemu-img shrinks, then refuses
    k = run([twins.kite, "img", "amend", "-o", "compat=0.10,size=64k", NAME], cwd=twins.k)
    assert k.returncode == 1 and "zstd compression type" in k.stderr


def test_refused_late_by_qemu_img_untouched_by_kite(twins, kite):
    """qemu-img resizes, then finds the snapshot's size keeps it from downgrading; kite
    finds it first and leaves the image as it was."""
    img = create(twins.orig / NAME)
    qio(img, "write -P 1 0 128k")
    sh("qemu-img", "snapshot", "-c", "s1", img)
    before = digest(img)
    k = run([kite, "img", "amend", "-o", "compat=0.10,size=16M", NAME], cwd=twins.orig)
    assert k.returncode == 1
    assert k.stderr == "kite: error: Internal snapshots prevent downgrade of image\n"
    assert digest(img) == before


def test_upgrade(twins):
    img = create(twins.orig / NAME, opts="compat=0.10")
    qio(img, "write -P 1 0 256k", "write -c -P 2 256k 128k")
    sh("qemu-img", "snapshot", "-c", "s1", img)
    qio(img, "write -P 3 64k 64k")
    twins.amend("-o", "compat=1.1")
    twins.snapshots_match("s1")
    twins.amend("-o", "compat=1.1,lazy_refcounts=on,refcount_bits=8,size=16M")
    twins.amend("-o", "compat=v3")


def test_upgrade_rewrites_old_snapshot_table(twins):
    """A v2 snapshot without the extra data v3 requires: qemu-img writes a new table."""
    img = create(twins.orig / NAME, opts="compat=0.10")
    qio(img, "write -P 1 0 128k")
    sh("qemu-img", "snapshot", "-c", "old", img)
    with open(img, "r+b") as f:
        hdr = f.read(72)
        (off,) = struct.unpack(">Q", hdr[64:72])
        f.seek(off)
        entry = bytearray(f.read(512))
        id_len, name_len = struct.unpack(">HH", entry[12:16])
        (extra,) = struct.unpack(">I", entry[36:40])
        names = entry[40 + extra:40 + extra + id_len + name_len]
        new = entry[:36] + bytes(4) + names
        new += bytes(-len(new) % 8)
        f.seek(off)
        f.write(new + bytes(len(entry) - len(new)))
    check_clean(img)
    # qemu-img discards the old table's cluster (zeros), kite leaves it as it was
    twins.amend("-o", "compat=1.1", same_bytes=False)
    twins.snapshots_match("old")
    (sn,) = json.loads(sh("qemu-img", "info", "--output=json", NAME, cwd=twins.k))["snapshots"]
    assert sn["id"] == "1" and sn["name"] == "old"


# ---- lazy_refcounts ----

def test_lazy_refcounts(twins):
    rich_image(twins.orig)
    twins.amend("-o", "lazy_refcounts=on")
    twins.amend("-o", "lazy_refcounts=y")
    twins.amend("-o", "lazy_refcounts")


def test_lazy_refcounts_off_on_v2_and_on_refused(twins):
    create(twins.orig / NAME, opts="compat=0.10")
    assert twins.amend("-o", "lazy_refcounts=on").returncode == 1
    assert twins.amend("-o", "lazy_refcounts=off").returncode == 0


@pytest.mark.parametrize("opts", ["lazy_refcounts=off", "compat=0.10", "refcount_bits=8"])
def test_dirty_image_repaired_first(twins, opts):
    """A dirty image (lazy refcounts, the writer killed): the open repairs it and says so as
    qemu-img does; only freed clusters' old bytes differ (kite does not discard them)."""
    img = create(twins.orig / NAME, opts="lazy_refcounts=on")
    r = run(["qemu-io", "-c", "write -P 3 0 1M", "-c", "write -z 1M 64k", "-c", "abort",
             str(img)])
    assert r.returncode != 0
    assert struct.unpack(">Q", open(img, "rb").read()[72:80])[0] & 1  # dirty
    k = twins.amend("-o", opts, same_bytes=False)
    assert "Rebuilding refcount structure" in k.stderr


# ---- refcount_bits ----

@pytest.mark.parametrize("bits", [1, 2, 4, 8, 32, 64])
def test_refcount_bits(twins, bits):
    rich_image(twins.orig, snapshot=bits > 1)
    twins.amend("-o", f"refcount_bits={bits}")
    if bits > 1:
        twins.snapshots_match("s1")


@pytest.mark.parametrize("bits", [2, 64])
def test_refcount_bits_small_clusters(twins, bits):
    """512-byte clusters: many refcount blocks, the table grows, blocks get placed among
    the data (as qemu-img places them)."""
    img = create(twins.orig / NAME, size="4M", opts="cluster_size=512")
    qio(img, "write -P 1 0 3M", "write -z 3M 512k")
    sh("qemu-img", "snapshot", "-c", "s1", img)
    qio(img, "write -P 2 1M 1M")
    twins.amend("-o", f"refcount_bits={bits}")
    twins.snapshots_match("s1")


def test_refcount_too_wide_refused(twins):
    rich_image(twins.orig)  # the snapshot shares clusters: refcount 2
    assert twins.amend("-o", "refcount_bits=1").returncode == 1


# ---- backing_file / backing_fmt ----

@pytest.mark.parametrize("opts,rc", [
    ("backing_file=base.qcow2,backing_fmt=qcow2", 0),
    ("backing_file=base.qcow2", 1),
    ("backing_fmt=qcow2", 1),
    ("backing_file=other.qcow2,backing_fmt=qcow2", 1),
    ("backing_file=base.qcow2,backing_fmt=raw", 1),
    ("backing_file=", 1),
])
def test_backing_file(twins, opts, rc):
    rich_image(twins.orig, backing=True, snapshot=False)
    create(twins.orig / "other.qcow2")
    assert twins.amend("-o", opts).returncode == rc


def test_backing_file_without_backing(twins):
    create(twins.orig / NAME)
    assert twins.amend("-o", "backing_file=").returncode == 1
    assert twins.amend("-o", "backing_file=x.qcow2,backing_fmt=qcow2").returncode == 1


# ---- size ----

@pytest.mark.parametrize("size", ["16M", "4M", "8000000", "1.5M", "100k", "8M", "1000",
                                  "1.k", "0.5k", "+6m", "0x100000", " 2M"])
def test_size(twins, size):
    rich_image(twins.orig, snapshot=False)
    twins.amend("-o", f"size={size}")


def test_size_with_snapshots_and_backing(twins):
    rich_image(twins.orig, backing=True)
    twins.amend("-o", "size=4M")  # v3 keeps each snapshot's own size
    twins.snapshots_match("s1")
    twins.amend("-o", "size=12M")


def test_size_v2_snapshots_refused(twins):
    img = create(twins.orig / NAME, opts="compat=0.10")
    sh("qemu-img", "snapshot", "-c", "s1", img)
    assert twins.amend("-o", "size=16M").returncode == 1
    assert twins.amend("-o", "compat=1.1,size=16M").returncode == 0  # upgraded first


def test_size_grows_over_longer_backing(twins):
    """The grown part reads as zeros, not as the longer backing file's data."""
    create(twins.orig / "base.qcow2", size="16M")
    qio(twins.orig / "base.qcow2", "write -P 7 0 16M")
    create(twins.orig / NAME, size="4M", backing="base.qcow2")
    twins.amend("-o", "size=12M")
    r = run(["qemu-io", "-c", "read -P 7 0 4M", "-c", "read -P 0 4M 8M", str(twins.k / NAME)])
    assert "verification failed" not in r.stdout


# ---- several options at once, the command line ----

def test_all_at_once(twins):
    rich_image(twins.orig, backing=True)
    twins.amend("-o", "compat=0.10,refcount_bits=16,lazy_refcounts=off,"
                "backing_file=base.qcow2,backing_fmt=qcow2", "-o", "size=8M",
                same_bytes=False)  # the snapshot's cluster: see the downgrade test
    twins.snapshots_match("s1", qemu_keeps_it=False)
    twins.amend("-o", "refcount_bits=4,lazy_refcounts=on,size=4M")


@pytest.mark.parametrize("args", [
    [], ["-q"], ["-p"], ["-p", "-q"], ["--force"], ["-t", "none"], ["-t", "unsafe"],
    ["-t", "bogus"], ["-f", "qcow2"], ["-f", "raw"],
])
def test_command_line(twins, args):
    create(twins.orig / NAME)
    twins.amend(*args, "-o", "lazy_refcounts=on")


def test_usage_errors(twins, kite):
    create(twins.orig / NAME)
    for args in (["-o", "size=2M", NAME, "x"], ["-o", "size=2M"], [NAME], ["-x", NAME]):
        k = run([kite, "img", "amend", *args], cwd=twins.orig)
        q = run(["qemu-img", "amend", *args], cwd=twins.orig)
        assert (k.returncode, k.stdout) == (q.returncode, q.stdout) == (1, q.stdout)
        assert stderr_lines(k.stderr, "kite: error: ") == stderr_lines(q.stderr, "qemu-img: ")


def test_not_qcow2(twins, kite):
    sh("qemu-img", "create", "-q", "-f", "raw", twins.orig / NAME, "1M")
    for args in (["-f", "raw", "-o", "size=2M"], ["-f", "raw", "-o", "help"]):
        k = run([kite, "img", "amend", *args, NAME], cwd=twins.orig)
        q = run(["qemu-img", "amend", *args, NAME], cwd=twins.orig)
        assert (k.returncode, k.stdout) == (q.returncode, q.stdout) == (1, "")
        assert stderr_lines(k.stderr, "kite: error: ") == stderr_lines(q.stderr, "qemu-img: ")


def test_image_in_use(twins, kite):
    """An image a VM (here qemu-io) holds is refused with qemu-img's lock message."""
    img = rich_image(twins.orig, snapshot=False)
    before = digest(img)
    holder = subprocess.Popen(["qemu-io", str(img)], stdin=subprocess.PIPE,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        holder.stdin.write("help\n")
        holder.stdin.flush()
        assert holder.stdout.readline()
        for opts in ("lazy_refcounts=on", "help"):
            k = run([kite, "img", "amend", "-o", opts, NAME], cwd=twins.orig)
            q = run(["qemu-img", "amend", "-o", opts, NAME], cwd=twins.orig)
            assert (k.returncode, k.stdout) == (q.returncode, q.stdout) == (1, "")
            assert 'Failed to get "write" lock' in k.stderr
            assert stderr_lines(k.stderr, "kite: error: ") == \
                stderr_lines(q.stderr, "qemu-img: ")
    finally:
        holder.stdin.close()
        holder.wait(timeout=30)
    assert digest(img) == before


def test_image_opts(twins):
    create(twins.orig / NAME)
    qio(twins.orig / NAME, "write -P 1 0 64k", "write -z 64k 64k")
    for d in (twins.k, twins.q):
        shutil.rmtree(d, ignore_errors=True)
        shutil.copytree(twins.orig, d)
    spec = f"driver=qcow2,file.filename={NAME}"
    k = run([twins.kite, "img", "amend", "--image-opts", "-o", "compat=0.10", spec], cwd=twins.k)
    q = run(["qemu-img", "amend", "--image-opts", "-o", "compat=0.10", spec], cwd=twins.q)
    assert (k.returncode, k.stdout, k.stderr) == (q.returncode, q.stdout, "") == (0, "", "")
    assert digest(twins.k / NAME) == digest(twins.q / NAME)


def test_bitmaps_kept(twins):
    """A persistent dirty bitmap survives amend as under qemu-img (kite keeps bitmaps current
    on every write): both amended images list the same bitmaps and read the same."""
    img = rich_image(twins.orig, snapshot=False)
    sh("qemu-img", "bitmap", "--add", img, "b0")
    twins.amend("-o", "lazy_refcounts=on", same_bytes=False)
    for d in (twins.k, twins.q):
        check_clean(d / NAME)
    data = [
        json.loads(sh("qemu-img", "info", "--output=json", d / NAME))["format-specific"]["data"]
        for d in (twins.k, twins.q)
    ]
    assert data[0]["lazy-refcounts"] and data[0]["bitmaps"] == data[1]["bitmaps"]
    assert [b["name"] for b in data[0]["bitmaps"]] == ["b0"]


# ---- a failure part way ----

def limited(size):
    """Writes past `size` bytes fail (EFBIG), as a full disk fails them."""
    def set_limit():
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_FSIZE, (size, size))
    return set_limit


@pytest.mark.parametrize("opts", ["refcount_bits=8", "refcount_bits=64", "compat=0.10",
                                  "refcount_bits=4,lazy_refcounts=on"])
def test_failure_part_way_leaves_a_clean_image(twins, kite, opts):
    """The new clusters an amend writes go past the end of the file: failing the k-th of
    them fails the amend, and the image is still clean, reads as before, and keeps its
    snapshot."""
    rich_image(twins.orig, backing=True)
    img = twins.k / NAME
    failed = 0
    for k in range(6):
        shutil.rmtree(twins.k, ignore_errors=True)
        shutil.copytree(twins.orig, twins.k)
        limit = os.path.getsize(img) + k * 65536
        r = subprocess.run([kite, "img", "amend", "-o", opts, NAME], cwd=twins.k,
                           capture_output=True, text=True, preexec_fn=limited(limit))
        if r.returncode:
            failed += 1
            assert "File too large" in r.stderr, r.stderr
        check_clean(img)
        assert run(["qemu-img", "compare", "-q", twins.orig / NAME, img]).returncode == 0
        assert snapshot_raw(img, "s1", twins.tmp / "k.raw") == \
            snapshot_raw(twins.orig / NAME, "s1", twins.tmp / "o.raw")
    assert failed >= 2
