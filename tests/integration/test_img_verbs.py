"""kite img check, snapshot, compare, rebase, commit and measure against qemu-img: same
messages, JSON fields and exit codes; every image kite changed passes qemu-img check."""
import json
import struct

import pytest

from conftest import run


def sh(*argv, cwd=None):
    r = run([str(a) for a in argv], cwd=cwd)
    assert r.returncode == 0, " ".join(map(str, argv)) + "\n" + r.stdout + r.stderr
    return r.stdout


def qcow2(path, size="8M", writes=(), backing=None, opts=None):
    args = ["qemu-img", "create", "-q", "-f", "qcow2"]
    if opts:
        args += ["-o", opts]
    if backing:
        args += ["-b", backing, "-F", "qcow2"]
    sh(*args, path, *([size] if size else []))
    if writes:
        sh("qemu-io", *sum((["-c", w] for w in writes), []), path)
    return path


def check_clean(path):
    r = run(["qemu-img", "check", str(path)])
    assert r.returncode == 0, r.stdout + r.stderr
    assert "No errors were found on the image." in r.stdout


def as_raw(path, out):
    sh("qemu-img", "convert", "-O", "raw", path, out)
    return out.read_bytes()


def leak_one_cluster(path):
    """Drops the L2 entry of guest cluster 1: its cluster stays referenced by refcount only."""
    with open(path, "r+b") as f:
        hdr = f.read(104)
        (l1,) = struct.unpack(">Q", hdr[40:48])
        f.seek(l1)
        (l2,) = struct.unpack(">Q", f.read(8))
        f.seek((l2 & 0x00FFFFFFFFFFFE00) + 8)
        f.write(bytes(8))


# ---- check ----

def test_check_clean_image(kite, tmp_path):
    img = qcow2(tmp_path / "a.qcow2", writes=["write -P 1 0 256k"])
    r, q = run([kite, "img", "check", str(img)]), run(["qemu-img", "check", str(img)])
    assert (r.returncode, r.stdout) == (q.returncode, q.stdout) == (0, q.stdout)
    r = run([kite, "img", "check", "--output=json", str(img)])
    q = run(["qemu-img", "check", "--output=json", str(img)])
    assert r.returncode == 0
    assert json.loads(r.stdout) == json.loads(q.stdout)


def test_check_leaks_and_repair(kite, tmp_path):
    img = qcow2(tmp_path / "a.qcow2", writes=["write -P 1 0 256k"])
    leak_one_cluster(img)
    r, q = run([kite, "img", "check", str(img)]), run(["qemu-img", "check", str(img)])
    assert q.returncode == 3
    assert (r.returncode, r.stdout) == (q.returncode, q.stdout)
    r = run([kite, "img", "check", "--output=json", str(img)])
    q = run(["qemu-img", "check", "--output=json", str(img)])
    assert r.returncode == 3
    assert json.loads(r.stdout) == json.loads(q.stdout)
    twin = tmp_path / "twin.qcow2"
    twin.write_bytes(img.read_bytes())
    r = run([kite, "img", "check", "-r", "leaks", str(img)])
    q = run(["qemu-img", "check", "-r", "leaks", str(twin)])
    assert (r.returncode, r.stdout) == (q.returncode, q.stdout) == (0, q.stdout)
    check_clean(img)
    assert img.read_bytes() == twin.read_bytes() or run(
        ["qemu-img", "compare", str(img), str(twin)]).returncode == 0


def test_check_corruption_exit_code(kite, tmp_path):
    img = qcow2(tmp_path / "a.qcow2", writes=["write -P 1 0 256k"])
    with open(img, "r+b") as f:
        hdr = f.read(104)
        (rt,) = struct.unpack(">Q", hdr[48:56])
        f.seek(rt)
        (rb,) = struct.unpack(">Q", f.read(8))
        f.seek(rb + 2 * 6)  # refcount of cluster 6 (a data cluster) set to 0
        f.write(bytes(2))
    q = run(["qemu-img", "check", str(img)])
    r = run([kite, "img", "check", str(img)])
    assert q.returncode == 2
    assert r.returncode == 2
    assert "errors were found on the image" in r.stdout
    want = as_raw(img, tmp_path / "before.raw")
    r = run([kite, "img", "check", "-r", "all", str(img)])
    assert r.returncode == 0, r.stdout + r.stderr
    assert "1 corruptions" in r.stdout
    check_clean(img)
    assert as_raw(img, tmp_path / "after.raw") == want


def test_check_raw_is_63(kite, tmp_path):
    img = tmp_path / "r.img"
    img.write_bytes(bytes(65536))
    r = run([kite, "img", "check", "-f", "raw", str(img)])
    assert r.returncode == 63
    assert "does not support checks" in r.stderr


# ---- snapshot ----

def test_snapshots(kite, tmp_path):
    img = qcow2(tmp_path / "s.qcow2", writes=["write -P 1 0 1M"])
    assert run([kite, "img", "snapshot", "-c", "one", str(img)]).returncode == 0
    sh("qemu-io", "-c", "write -P 2 512k 1M", img)
    assert run([kite, "img", "snapshot", "-c", "two", str(img)]).returncode == 0
    check_clean(img)
    r = run([kite, "img", "snapshot", "-l", str(img)])
    assert r.returncode == 0
    assert r.stdout == sh("qemu-img", "snapshot", "-l", img)
    assert [s["name"] for s in json.loads(sh("qemu-img", "info", "--output=json",
                                             img))["snapshots"]] == ["one", "two"]
    sh("qemu-io", "-c", "write -P 3 0 2M", img)
    assert run([kite, "img", "snapshot", "-a", "one", str(img)]).returncode == 0
    r = run(["qemu-io", "-c", "read -P 1 0 1M", "-c", "read -P 0 1M 1M", str(img)])
    assert "Pattern verification failed" not in r.stdout
    assert run([kite, "img", "snapshot", "-a", "2", str(img)]).returncode == 0
    r = run(["qemu-io", "-c", "read -P 1 0 512k", "-c", "read -P 2 512k 1M", str(img)])
    assert "Pattern verification failed" not in r.stdout
    assert run([kite, "img", "snapshot", "-d", "one", str(img)]).returncode == 0
    check_clean(img)
    assert "one" not in sh("qemu-img", "snapshot", "-l", img)
    r = run([kite, "img", "snapshot", "-a", "one", str(img)])
    assert r.returncode == 1 and r.stderr.startswith("kite: error: ")


def test_snapshot_records_what_qemu_img_records(kite, tmp_path):
    """A snapshot taken by kite and one taken by qemu-img carry the same fields: icount 0 (not
    "none"), the date in microseconds, no VM state."""
    mine, theirs = qcow2(tmp_path / "k.qcow2"), qcow2(tmp_path / "q.qcow2")
    assert run([kite, "img", "snapshot", "-c", "s", str(mine)]).returncode == 0
    sh("qemu-img", "snapshot", "-c", "s", theirs)
    def fields(img):
        (sn,) = json.loads(sh("qemu-img", "info", "--output=json", img))["snapshots"]
        assert sn.pop("date-nsec") % 1000 == 0
        sn.pop("date-sec")
        return sn
    assert fields(mine) == fields(theirs)
    strip_date = lambda out: [line[:40] + line[59:] for line in out.splitlines()]
    assert strip_date(sh("qemu-img", "snapshot", "-l", mine)) == \
        strip_date(sh("qemu-img", "snapshot", "-l", theirs))


# ---- compare ----

def compare_pair(kite, a, b, *opts):
    r = run([kite, "img", "compare", *opts, str(a), str(b)])
    q = run(["qemu-img", "compare", *opts, str(a), str(b)])
    assert (r.returncode, r.stdout) == (q.returncode, q.stdout), (r.stderr, q.stderr)
    return r


def test_compare_messages_and_codes(kite, tmp_path):
    raw = tmp_path / "a.img"
    sh("qemu-img", "create", "-q", "-f", "raw", raw, "4M")
    same = qcow2(tmp_path / "same.qcow2", "4M")
    assert compare_pair(kite, raw, same).returncode == 0
    diff = qcow2(tmp_path / "diff.qcow2", "4M", ["write -P 5 1000 1"])
    assert compare_pair(kite, raw, diff).stdout == "Content mismatch at offset 512!\n"
    compare_pair(kite, raw, diff, "-s")
    bigger = qcow2(tmp_path / "big.qcow2", "5M")
    assert compare_pair(kite, raw, bigger).returncode == 0
    assert compare_pair(kite, raw, bigger, "-s").returncode == 1
    tail = qcow2(tmp_path / "tail.qcow2", "5M", ["write -P 5 4M 1"])
    assert compare_pair(kite, raw, tail).returncode == 1
    zero = qcow2(tmp_path / "zero.qcow2", "4M", ["write -P 0 1M 64k"])
    compare_pair(kite, raw, zero)
    compare_pair(kite, raw, zero, "-s")
    compare_pair(kite, same, zero, "-s")
    compare_pair(kite, raw, raw, "-f", "raw", "-F", "raw")
    r = run([kite, "img", "compare", str(raw), str(tmp_path / "missing")])
    assert r.returncode == 2 and r.stderr.startswith("kite: error: ")


# ---- rebase and commit ----

def chain(tmp_path):
    base = qcow2(tmp_path / "base.qcow2", "8M", ["write -P 1 0 4M"])
    top = qcow2(tmp_path / "top.qcow2", None, ["write -P 2 1M 1M", "write -z 3M 64k"],
                backing="base.qcow2")
    return base, top


def test_commit(kite, tmp_path):
    base, top = chain(tmp_path)
    want = as_raw(top, tmp_path / "want.raw")
    r = run([kite, "img", "commit", str(top)])
    assert r.returncode == 0, r.stderr
    assert r.stdout == "Image committed.\n"
    check_clean(base)
    check_clean(top)
    assert as_raw(base, tmp_path / "b.raw") == want
    assert as_raw(top, tmp_path / "t.raw") == want
    # the top is empty again: everything comes from the base
    m = json.loads(sh("qemu-img", "map", "--output=json", top))
    assert all(e["depth"] == 1 for e in m), m
    info = json.loads(sh("qemu-img", "info", "--output=json", top))
    assert info["backing-filename"] == "base.qcow2"


def test_commit_keep_with_d(kite, tmp_path):
    base, top = chain(tmp_path)
    want = as_raw(top, tmp_path / "want.raw")
    assert run([kite, "img", "commit", "-d", str(top)]).returncode == 0
    assert as_raw(base, tmp_path / "b.raw") == want
    m = json.loads(sh("qemu-img", "map", "--output=json", top))
    assert any(e["depth"] == 0 and e["present"] for e in m)


def test_commit_without_backing_fails(kite, tmp_path):
    img = qcow2(tmp_path / "a.qcow2")
    r = run([kite, "img", "commit", str(img)])
    assert r.returncode == 1 and r.stderr.startswith("kite: error: ")


def test_rebase_safe_keeps_content(kite, tmp_path):
    base, top = chain(tmp_path)
    new = qcow2(tmp_path / "new.qcow2", "8M", ["write -P 7 2M 4M"])
    want = as_raw(top, tmp_path / "want.raw")
    r = run([kite, "img", "rebase", "-b", "new.qcow2", "-F", "qcow2", str(top)])
    assert r.returncode == 0, r.stderr
    check_clean(top)
    info = json.loads(sh("qemu-img", "info", "--output=json", top))
    assert info["backing-filename"] == "new.qcow2"
    assert info["backing-filename-format"] == "qcow2"
    assert as_raw(top, tmp_path / "t.raw") == want
    r = run([kite, "img", "rebase", "-b", "", str(top)])
    assert r.returncode == 0, r.stderr
    check_clean(top)
    assert "backing-filename" not in json.loads(sh("qemu-img", "info", "--output=json", top))
    assert as_raw(top, tmp_path / "t2.raw") == want


def test_rebase_writes_what_qemu_img_writes(kite, tmp_path):
    """Differing sectors are copied as data, and as zero clusters past the end of a shorter
    old backing file: the same map as qemu-img rebase leaves, the same content."""
    def build(d):
        d.mkdir()
        qcow2(d / "base.qcow2", "3M", ["write -P 1 0 1M", "write -P 2 2M 4k"])
        qcow2(d / "top.qcow2", None, ["write -P 3 512k 64k"], backing="base.qcow2")
        sh("qemu-img", "resize", d / "top.qcow2", "4M")
        qcow2(d / "new.qcow2", "4M", ["write -P 7 1M 2M", "write -P 1 0 256k"])
        return d / "top.qcow2"
    mine, theirs = build(tmp_path / "k"), build(tmp_path / "q")
    want = as_raw(mine, tmp_path / "want.raw")
    r = run([kite, "img", "rebase", "-b", "new.qcow2", "-F", "qcow2", str(mine)])
    assert r.returncode == 0, r.stderr
    sh("qemu-img", "rebase", "-b", "new.qcow2", "-F", "qcow2", theirs)
    strip = lambda m: [{k: v for k, v in e.items() if k != "offset"} for e in m]
    assert strip(json.loads(sh("qemu-img", "map", "--output=json", mine))) == \
        strip(json.loads(sh("qemu-img", "map", "--output=json", theirs)))
    assert as_raw(mine, tmp_path / "got.raw") == want
    check_clean(mine)


@pytest.mark.parametrize("unsafe", [[], ["-u"]], ids=["safe", "unsafe"])
def test_rebase_needs_the_backing_format(kite, tmp_path, unsafe):
    """qemu-img 7.2 probes no backing format; kite refuses as it does, before writing."""
    base, top = chain(tmp_path)
    qcow2(tmp_path / "new.qcow2", "8M", ["write -P 7 2M 4M"])
    before = top.read_bytes()
    theirs = tmp_path / "theirs.qcow2"  # qemu-img copies clusters before it refuses
    theirs.write_bytes(before)
    q = run(["qemu-img", "rebase", *unsafe, "-b", "new.qcow2", "theirs.qcow2"], cwd=tmp_path)
    r = run([kite, "img", "rebase", *unsafe, "-b", "new.qcow2", "top.qcow2"], cwd=tmp_path)
    assert q.returncode == r.returncode == 1
    assert r.stderr == q.stderr.replace("qemu-img: ", "kite: error: ")
    assert top.read_bytes() == before


def test_rebase_unsafe_only_renames(kite, tmp_path):
    base, top = chain(tmp_path)
    moved = tmp_path / "moved.qcow2"
    base.rename(moved)
    r = run([kite, "img", "rebase", "-u", "-b", "moved.qcow2", "-F", "qcow2", str(top)])
    assert r.returncode == 0, r.stderr
    assert json.loads(sh("qemu-img", "info", "--output=json",
                         top))["backing-filename"] == "moved.qcow2"
    check_clean(top)


# ---- measure ----

@pytest.mark.parametrize("args", [
    ["-O", "qcow2", "--size", "20G"],
    ["-O", "raw", "--size", "1000"],
    ["-O", "qcow2", "-o", "cluster_size=4K,refcount_bits=1", "--size", "1T"],
    ["-O", "qcow2", "-o", "cluster_size=2M,extended_l2=on", "--size", "100G"],
    ["-O", "qcow2", "IMG"],
    ["-O", "raw", "IMG"],
    ["-O", "qcow2", "-o", "cluster_size=512", "IMG"],
    ["-O", "qcow2", "-o", "compat=0.10", "IMG"],
    ["-O", "qcow2", "BITMAPS"],
    ["-O", "qcow2", "-o", "cluster_size=4K", "BITMAPS"],
    ["-O", "qcow2", "-o", "compat=0.10", "BITMAPS"],
])
def test_measure_matches_qemu(kite, tmp_path, args):
    img = qcow2(tmp_path / "m.qcow2", "64M", ["write -P 1 0 3M", "write -P 2 10M 100k",
                                              "write -z 20M 1M"])
    if "BITMAPS" in args:  # the bitmaps' space is reported as qemu-img reckons it
        sh("qemu-img", "bitmap", "--add", img, "b0")
        sh("qemu-img", "bitmap", "--add", "-g", "4096", img, "a longer bitmap name")
        args = ["IMG" if a == "BITMAPS" else a for a in args]
    args = [str(img) if a == "IMG" else a for a in args]
    for out in ([], ["--output=json"]):
        r = run([kite, "img", "measure", *out, *args])
        assert r.returncode == 0, r.stderr
        assert r.stdout == sh("qemu-img", "measure", *out, *args)


# ---- bad input, for every verb ----

@pytest.mark.parametrize("argv,code", [
    (["info", "missing.qcow2"], 1),
    (["info", "--output=xml", "good.qcow2"], 1),
    (["info", "--frob", "good.qcow2"], 1),
    (["info", "-f", "qcow2", "junk.bin"], 1),
    (["info", "truncated.qcow2"], 1),
    (["map", "huge-l1.qcow2"], 1),
    (["check", "missing.qcow2"], 1),
    (["snapshot", "-c", "x", "missing.qcow2"], 1),
    (["resize", "good.qcow2", "+12Q"], 1),
    (["resize", "missing.qcow2", "+1M"], 1),
    (["rebase", "good.qcow2"], 1),
    (["measure", "-O", "qcow2"], 1),
    (["measure", "-O", "qcow2", "--size", "abc"], 1),
    (["commit", "missing.qcow2"], 1),
    (["frobnicate", "good.qcow2"], 1),
])
def test_bad_input(kite, tmp_path, argv, code):
    good = qcow2(tmp_path / "good.qcow2", "1M")
    (tmp_path / "junk.bin").write_bytes(b"\x7fELF" + bytes(4092))
    (tmp_path / "truncated.qcow2").write_bytes(good.read_bytes()[:40])
    data = bytearray(good.read_bytes())
    data[36:40] = struct.pack(">I", 0x7FFFFFFF)  # l1_size far larger than the file
    (tmp_path / "huge-l1.qcow2").write_bytes(bytes(data))
    before = good.read_bytes()
    r = run([kite, "img", *argv], cwd=tmp_path)
    assert r.returncode == code, r.stdout + r.stderr
    assert r.stderr.startswith("kite: error: "), r.stderr
    assert "Traceback" not in r.stderr and "runtime error" not in r.stderr
    assert good.read_bytes() == before


def test_commit_to_a_deeper_base(kite, tmp_path):
    base = qcow2(tmp_path / "base.qcow2", "8M", ["write -P 1 0 8M"])
    mid = qcow2(tmp_path / "mid.qcow2", None, ["write -P 2 1M 1M", "write -P 6 7M 4k"],
                backing="base.qcow2")
    top = qcow2(tmp_path / "top.qcow2", None, ["write -P 3 1536k 1M", "write -z 5M 100k",
                                               "write -P 4 6M 1000"], backing="mid.qcow2")
    want = as_raw(top, tmp_path / "want.raw")
    mid_before = as_raw(mid, tmp_path / "mid0.raw")
    r = run([kite, "img", "commit", "-b", str(base), str(top)])
    assert r.returncode == 0, r.stderr
    assert r.stdout == "Image committed.\n"
    for img in (base, mid, top):
        check_clean(img)
    assert as_raw(base, tmp_path / "b.raw") == want
    assert as_raw(top, tmp_path / "t.raw") == want  # the chain above is kept (-b implies -d)
    r = run([kite, "img", "commit", "-b", str(tmp_path / "top.qcow2"), str(top)])
    assert r.returncode == 1 and r.stderr.startswith("kite: error: ")
    # committing the top into its middle layer keeps the middle's COW right
    top2 = qcow2(tmp_path / "top2.qcow2", None, ["write -P 8 1000 10"], backing="mid.qcow2")
    want2 = as_raw(top2, tmp_path / "want2.raw")
    assert run([kite, "img", "commit", "-b", str(mid), str(top2)]).returncode == 0
    check_clean(mid)
    assert as_raw(mid, tmp_path / "m.raw") == want2
    assert mid_before != want2


@pytest.mark.parametrize("name", ["base.qcow2", "d/base.qcow2", "nothere.qcow2"])
def test_commit_base_is_named_as_the_chain_names_it(kite, tmp_path, name):
    """-b BASE is looked for as QEMU looks: relative to the image that refers to it, not to
    the current directory."""
    for side in ("k", "q"):
        (tmp_path / side / "d").mkdir(parents=True)
        qcow2(tmp_path / side / "d" / "base.qcow2", "4M", ["write -P 1 0 4M"])
        qcow2(tmp_path / side / "d" / "top.qcow2", None, ["write -P 2 1M 1M"],
              backing="base.qcow2")
    q = run(["qemu-img", "commit", "-b", name, "d/top.qcow2"], cwd=tmp_path / "q")
    k = run([kite, "img", "commit", "-b", name, "d/top.qcow2"], cwd=tmp_path / "k")
    assert (k.returncode, k.stdout) == (q.returncode, q.stdout)
    assert k.stderr == q.stderr.replace("qemu-img: ", "kite: error: ")
    assert as_raw(tmp_path / "k" / "d" / "base.qcow2", tmp_path / "k.raw") == \
        as_raw(tmp_path / "q" / "d" / "base.qcow2", tmp_path / "q.raw")


def test_measure_v2_source_and_bad_options(kite, tmp_path):
    img = qcow2(tmp_path / "v2.qcow2", "16M", ["write -P 1 0 1M"], opts="compat=0.10")
    for out in ([], ["--output=json"]):
        r = run([kite, "img", "measure", *out, "-O", "qcow2", str(img)])
        assert r.returncode == 0, r.stderr
        assert r.stdout == sh("qemu-img", "measure", *out, "-O", "qcow2", img)
    r = run([kite, "img", "measure", "-O", "qcow2", "-o", "cluster_size=4k,extended_l2=on",
             "--size", "1G"])
    assert r.returncode == 1
    assert "Extended L2 entries are only supported" in r.stderr


# ---- persistent bitmaps (writers keep them: test_img_dd_bitmap.py) ----

def bitmap_image(tmp_path):
    img = qcow2(tmp_path / "bm.qcow2", size="64M", writes=["write -P 0x11 0 3M"])
    sh("qemu-img", "bitmap", "--add", img, "b0")
    sh("qemu-img", "bitmap", "--add", "-g", "512", img, "b1")
    sh("qemu-io", "-c", "write -P 0x22 1M 2M", img)  # dirties both bitmaps
    return img


def test_check_counts_bitmap_clusters(kite, tmp_path):
    img = bitmap_image(tmp_path)
    for out in ("human", "json"):
        r = run([kite, "img", "check", "--output=" + out, str(img)])
        q = run(["qemu-img", "check", "--output=" + out, str(img)])
        assert (r.returncode, r.stdout) == (q.returncode, q.stdout) == (0, q.stdout)


@pytest.mark.parametrize("args", [[], ["a.img"], ["a.img", "a.img", "a.img"], ["-f"],
                                  ["--bogus", "a.img", "a.img"], ["-x", "a.img", "a.img"]])
def test_compare_usage_errors_exit_1(kite, tmp_path, args):
    """qemu-img compare exits 1 on a usage error (2 only when an image cannot be read)."""
    sh("qemu-img", "create", "-q", "-f", "raw", tmp_path / "a.img", "1M")
    q = run(["qemu-img", "compare", *args], cwd=tmp_path)
    r = run([kite, "img", "compare", *args], cwd=tmp_path)
    assert q.returncode == r.returncode == 1, q.stderr + r.stderr
    assert r.stderr.startswith("kite: error: ")


@pytest.mark.parametrize("mode", ["leaks", "all"])
def test_check_repair_reports_like_qemu(kite, tmp_path, mode):
    """Guest cluster 1 mapped to cluster 0's host cluster: one corruption (refcount 1,
    two references, COPIED set) and one leak. -r leaks and -r all: the same lines on
    stdout and stderr, the same exit code, the same repaired image as qemu-img's."""
    img = qcow2(tmp_path / "k.qcow2", writes=["write -P 1 0 1M"])
    with open(img, "r+b") as f:
        (l1,) = struct.unpack(">Q", f.read(48)[40:48])
        f.seek(l1)
        (l2,) = struct.unpack(">Q", f.read(8))
        f.seek(l2 & 0x00FFFFFFFFFFFE00)
        e0 = f.read(8)
        f.write(e0)
    theirs = tmp_path / "q.qcow2"
    theirs.write_bytes(img.read_bytes())
    q = run(["qemu-img", "check", "-r", mode, "q.qcow2"], cwd=tmp_path)
    r = run([kite, "img", "check", "-r", mode, "k.qcow2"], cwd=tmp_path)
    assert (r.returncode, r.stdout, r.stderr) == (q.returncode, q.stdout, q.stderr)
    assert run(["qemu-img", "compare", str(img), str(theirs)]).returncode == 0
    if mode == "all":
        check_clean(img)
