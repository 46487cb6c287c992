"""kite img check against qemu-img check on damaged images: the same image is damaged with
byte edits, one copy is checked (and repaired) by qemu-img, the other by kite; stdout,
stderr and the exit code must be the same (qemu-img's own "qemu-img: " lines are kite's
"kite: error: " lines), and qemu-img must then find both repaired copies in the same state,
with the data that should survive still there."""
import re
import resource
import shutil
import struct

import pytest

from conftest import run

L2_MASK = 0x00FFFFFFFFFFFE00


def sh(*argv, cwd=None):
    r = run([str(a) for a in argv], cwd=cwd)
    assert r.returncode == 0, " ".join(map(str, argv)) + "\n" + r.stdout + r.stderr
    return r.stdout


def qcow2(path, size="4M", writes=(), opts=None, snapshot=None):
    args = ["qemu-img", "create", "-q", "-f", "qcow2"]
    if opts:
        args += ["-o", opts]
    sh(*args, path, size)
    if writes:
        sh("qemu-io", *sum((["-c", w] for w in writes), []), path)
    if snapshot:
        sh("qemu-img", "snapshot", "-c", snapshot, path)
    return path


def be(path, off, fmt):
    with open(path, "rb") as f:
        f.seek(off)
        return struct.unpack(fmt, f.read(struct.calcsize(fmt)))[0]


def put(path, off, fmt, value):
    with open(path, "r+b") as f:
        f.seek(off)
        f.write(struct.pack(fmt, value))


def l2_entry(path, index, extended=False):
    """File offset of entry `index` of the first L2 table (extended entries are 16 bytes:
    the entry, then the subcluster bitmap)."""
    l1 = be(path, 40, ">Q")
    return (be(path, l1, ">Q") & L2_MASK) + index * (16 if extended else 8)


def as_kite(stderr):
    return re.sub(r"(?m)^qemu-img: ", "kite: error: ", stderr)


def twins(tmp_path, img):
    """Two copies of `img` with the same name (the name is in the output), in q/ and k/."""
    paths = []
    for d in ("q", "k"):
        (tmp_path / d).mkdir(exist_ok=True)
        paths.append(tmp_path / d / "img.qcow2")
        shutil.copyfile(img, paths[-1])
    return paths


def check_both(kite, tmp_path, img, *args, same_after=True):
    """qemu-img check and kite img check with `args` on twin copies: same output and exit
    code, and (`same_after`) qemu-img's check of the results the same. Returns the two
    copies and those two checks."""
    q, k = twins(tmp_path, img)
    rq = run(["qemu-img", "check", *args, q.name], cwd=q.parent)
    rk = run([kite, "img", "check", *args, k.name], cwd=k.parent)
    assert "runtime error" not in rk.stderr and "Sanitizer" not in rk.stderr, rk.stderr
    assert (rk.returncode, rk.stdout) == (rq.returncode, rq.stdout), rk.stderr + rq.stderr
    assert rk.stderr == as_kite(rq.stderr)
    after_q = run(["qemu-img", "check", q.name], cwd=q.parent)
    after_k = run(["qemu-img", "check", k.name], cwd=k.parent)
    if same_after:
        assert (after_k.returncode, after_k.stdout, after_k.stderr) == \
            (after_q.returncode, after_q.stdout, after_q.stderr)
        return q, k
    return q, k, after_q, after_k


def reads(path, *patterns):
    """qemu-io (read-only) reads with pattern checks: what each says, timings left out."""
    r = run(["qemu-io", "-r", *sum((["-c", "read -P " + p] for p in patterns), []), path.name],
            cwd=path.parent)
    lines = [ln for ln in (r.stdout + r.stderr).splitlines() if " ops; " not in ln]
    return r.returncode, lines


def assert_data(q, k, *patterns, readable=True):
    """The data reads the same from both copies, and (when the image is `readable`: qemu
    opens it) it is the expected data."""
    rq, rk = reads(q, *patterns), reads(k, *patterns)
    assert rk == rq
    if readable:
        assert rk[0] == 0 and not any("Pattern verification failed" in ln for ln in rk[1]), rk


MODES = [[], ["-r", "leaks"], ["-r", "all"]]


# ---- 1. misaligned L2 entries: never a repair that frees a cluster still referenced ----

@pytest.mark.parametrize("extended", [False, True], ids=["l2", "extended-l2"])
@pytest.mark.parametrize("mode", MODES, ids=["check", "leaks", "all"])
def test_misaligned_data_entry(kite, tmp_path, extended, mode):
    """A data cluster's entry moved by 0x200: one error qemu-img cannot repair (it rebuilds
    the refcounts, the two clusters the entry touches stay in use)."""
    img = qcow2(tmp_path / "m.qcow2", writes=["write -P 1 0 128k"],
                opts="extended_l2=on" if extended else None)
    off = l2_entry(img, 1, extended)
    put(img, off, ">Q", be(img, off, ">Q") + 0x200)
    q, k = check_both(kite, tmp_path, img, *mode)
    assert_data(q, k, "1 0 64k")


@pytest.mark.parametrize("extended", [False, True], ids=["l2", "extended-l2"])
@pytest.mark.parametrize("mode", MODES, ids=["check", "leaks", "all"])
def test_misaligned_zero_entry(kite, tmp_path, extended, mode):
    """A preallocated zero cluster's entry moved by 0x200: -r all makes it a plain zero
    cluster and frees the host cluster, as qemu-img does."""
    img = qcow2(tmp_path / "z.qcow2", writes=["write -P 1 0 128k", "write -z 64k 64k"],
                opts="extended_l2=on" if extended else None)
    off = l2_entry(img, 1, extended)
    put(img, off, ">Q", be(img, off, ">Q") + 0x200)
    q, k = check_both(kite, tmp_path, img, *mode)
    assert_data(q, k, "1 0 64k", *(["0 64k 64k"] if mode == ["-r", "all"] else []))


# ---- 2. fragmentation is counted within each L2 table ----

@pytest.mark.parametrize("out", ["human", "json"])
def test_fragmentation_per_l2_table(kite, tmp_path, out):
    """4 KiB clusters: one L2 table maps 2 MiB, so clusters at 0, 2M and 4k use two tables;
    the jump between the tables is no fragmentation."""
    img = qcow2(tmp_path / "f.qcow2", "8M", opts="cluster_size=4k",
                writes=["write -P 1 0 4k", "write -P 2 2M 4k", "write -P 3 4k 4k"])
    q, k = check_both(kite, tmp_path, img, "--output=" + out)
    assert_data(q, k, "1 0 4k", "2 2M 4k", "3 4k 4k")


# ---- 3. backing loops fail the open, as in qemu-img ----

def few_fds():
    """qemu-img opens a looping chain until it runs out of file descriptors: keep that short."""
    resource.setrlimit(resource.RLIMIT_NOFILE, (64, 64))


@pytest.mark.parametrize("verb", [["check"], ["check", "-r", "all"], ["snapshot", "-c", "s"],
                                  ["snapshot", "-l"]])
def test_backing_loop_fails(kite, tmp_path, verb):
    """top -> mid -> base -> mid: qemu-img fails to open the chain (exit 1, nothing on
    stdout); kite names the loop and leaves the image alone."""
    qcow2(tmp_path / "base.qcow2", "1M")
    sh("qemu-img", "create", "-q", "-f", "qcow2", "-b", "base.qcow2", "-F", "qcow2",
       tmp_path / "mid.qcow2", cwd=tmp_path)
    sh("qemu-img", "create", "-q", "-f", "qcow2", "-b", "mid.qcow2", "-F", "qcow2",
       tmp_path / "top.qcow2", cwd=tmp_path)
    sh("qemu-img", "rebase", "-u", "-b", "mid.qcow2", "-F", "qcow2", "base.qcow2", cwd=tmp_path)
    before = (tmp_path / "top.qcow2").read_bytes()
    q = run(["qemu-img", *verb, "top.qcow2"], cwd=tmp_path, preexec_fn=few_fds)
    r = run([kite, "img", *verb, "top.qcow2"], cwd=tmp_path)
    assert (r.returncode, r.stdout) == (q.returncode, q.stdout) == (1, "")
    assert q.stderr.startswith("qemu-img: Could not open 'top.qcow2': ")
    assert r.stderr.startswith("kite: error: ") and "backing file loop" in r.stderr, r.stderr
    assert (tmp_path / "top.qcow2").read_bytes() == before


@pytest.mark.parametrize("verb", [["check"], ["snapshot", "-c", "s"]])
def test_missing_backing_file_fails(kite, tmp_path, verb):
    sh("qemu-img", "create", "-q", "-f", "qcow2", "-u", "-b", "gone.qcow2", "-F", "qcow2",
       tmp_path / "top.qcow2", "1M")
    q = run(["qemu-img", *verb, "top.qcow2"], cwd=tmp_path)
    r = run([kite, "img", *verb, "top.qcow2"], cwd=tmp_path)
    assert (r.returncode, r.stdout) == (q.returncode, q.stdout) == (1, "")
    assert "gone.qcow2" in q.stderr and "No such file or directory" in q.stderr
    assert r.stderr.startswith("kite: error: ") and "No such file or directory" in r.stderr


# ---- 4. images too damaged to open normally can still be checked ----

def snapshot_image(tmp_path):
    return qcow2(tmp_path / "s.qcow2", writes=["write -P 1 0 128k"], snapshot="s1")


def table_past_eof(img):
    put(img, 64, ">Q", 0x10000000)


def table_misaligned(img):
    put(img, 64, ">Q", 0x10008)


def too_much_extra_data(img):
    put(img, be(img, 64, ">Q") + 36, ">I", 5000)


def too_many_snapshots(img):
    put(img, 60, ">I", 70000)


@pytest.mark.parametrize("damage", [table_past_eof, table_misaligned, too_much_extra_data,
                                    too_many_snapshots])
@pytest.mark.parametrize("mode", MODES, ids=["check", "leaks", "all"])
def test_invalid_snapshot_table(kite, tmp_path, damage, mode):
    if damage == too_many_snapshots and mode == ["-r", "all"]:
        pytest.skip("see test_too_many_snapshots_repair")
    img = snapshot_image(tmp_path)
    damage(img)
    q, k = check_both(kite, tmp_path, img, *mode)
    # a table qemu cannot read (and check did not repair) keeps the image from opening
    readable = damage == table_past_eof or (damage == too_much_extra_data and mode[-1:] == ["all"])
    assert_data(q, k, "1 0 128k", readable=readable)


def error_counts(check):
    found = dict(re.findall(r"^(\d+) (errors|leaked clusters) were found", check.stdout, re.M))
    return {kind: int(n) for n, kind in found.items()}


def test_too_many_snapshots_repair(kite, tmp_path):
    """70000 snapshots, one real: -r all drops the overhang, reads 65535 empty entries past
    the table, and then cannot write the table back (the new one would overlap what it read
    as the old one): the image is marked corrupt, as by qemu-img. qemu-img has freed (and
    discarded) the real table's cluster by then; kite's copy keeps it, so afterwards it has
    fewer errors and leaks, never more."""
    img = snapshot_image(tmp_path)
    too_many_snapshots(img)
    q, k, after_q, after_k = check_both(kite, tmp_path, img, "-r", "all", same_after=False)
    assert after_k.returncode == after_q.returncode == 2
    fewer = error_counts(after_k)
    for kind, n in error_counts(after_q).items():
        assert fewer.get(kind, 0) <= n, (after_k.stdout, after_q.stdout)
    assert be(k, 72, ">Q") & 2 and be(q, 72, ">Q") & 2  # both marked corrupt
    assert_data(q, k, "1 0 128k", readable=False)


@pytest.mark.parametrize("mode", MODES, ids=["check", "leaks", "all"])
def test_l1_table_past_eof(kite, tmp_path, mode):
    img = qcow2(tmp_path / "l.qcow2", writes=["write -P 1 0 128k"])
    put(img, 40, ">Q", 0x10000000)
    check_both(kite, tmp_path, img, *mode)


@pytest.mark.parametrize("damage", [table_misaligned, "l1"])
def test_damaged_image_still_refused_for_io(kite, tmp_path, damage):
    """Only check opens such images: the verbs that read or write data refuse them."""
    img = snapshot_image(tmp_path)
    if damage == "l1":
        put(img, 40, ">Q", 0x10000000)
    else:
        damage(img)
    before = img.read_bytes()
    for verb in (["map"], ["resize", str(img), "+1M"], ["snapshot", "-c", "x"]):
        argv = [kite, "img", *verb] + ([] if verb[0] == "resize" else [str(img)])
        r = run(argv)
        assert r.returncode == 1 and r.stderr.startswith("kite: error: "), (verb, r.stderr)
    assert img.read_bytes() == before


# ---- 5. a dirty image with lazy refcounts: the refcount structure is rebuilt ----

@pytest.mark.parametrize("mode", MODES, ids=["check", "leaks", "all"])
def test_dirty_lazy_refcounts(kite, tmp_path, mode):
    """qemu-io writes with lazy refcounts and aborts: the refcounts on disk miss the new
    clusters. -r all rebuilds them ("Rebuilding refcount structure"); -r leaks cannot."""
    img = tmp_path / "d.qcow2"
    qcow2(img, opts="lazy_refcounts=on")
    r = run(["qemu-io", "-c", "write -P 1 0 64k", "-c", "write -P 2 1M 64k", "-c", "abort",
             str(img)])
    assert r.returncode != 0
    assert be(img, 72, ">Q") & 1  # still dirty
    q, k = check_both(kite, tmp_path, img, *mode)
    assert_data(q, k, "1 0 64k", "2 1M 64k")
    if mode == ["-r", "all"]:
        assert not be(k, 72, ">Q") & 1  # clean again
        check = run(["qemu-img", "check", str(k)])
        assert check.returncode == 0, check.stdout + check.stderr


def test_dirty_image_rebuild_with_snapshot_and_small_clusters(kite, tmp_path):
    img = qcow2(tmp_path / "d.qcow2", "256M", opts="lazy_refcounts=on,cluster_size=4k",
                writes=["write -P 1 0 1M"], snapshot="s1")
    run(["qemu-io", "-c", "write -P 2 0 64k", "-c", "write -P 3 100M 8M", "-c", "abort",
         str(img)])
    q, k = check_both(kite, tmp_path, img, "-r", "all")
    assert_data(q, k, "2 0 64k", "1 64k 960k", "3 100M 8M")


# ---- 6. --output=json: qemu-img's key order, byte for byte ----

def leaky_image(tmp_path):
    img = qcow2(tmp_path / "j.qcow2", "8M", writes=["write -P 1 0 256k", "write -c -P 2 1M 64k"])
    put(img, l2_entry(img, 1), ">Q", 0)  # guest cluster 1's host cluster leaks
    return img


@pytest.mark.parametrize("mode", MODES, ids=["check", "leaks", "all"])
def test_json_key_order(kite, tmp_path, mode):
    check_both(kite, tmp_path, leaky_image(tmp_path), "--output=json", *mode)


def test_json_with_errors(kite, tmp_path):
    img = qcow2(tmp_path / "e.qcow2", writes=["write -P 1 0 256k"])
    rb = be(img, be(img, 48, ">Q"), ">Q")
    put(img, rb + 2 * 5, ">H", 2)  # too high: a leak
    put(img, rb + 2 * 6, ">H", 0)  # zero for a cluster in use: an error
    for mode in MODES:
        check_both(kite, tmp_path, img, "--output=json", *mode)


def test_quiet_json_prints_nothing(kite, tmp_path):
    img = leaky_image(tmp_path)
    q, k = twins(tmp_path, img)
    rq = run(["qemu-img", "check", "-q", "--output=json", str(q)])
    rk = run([kite, "img", "check", "-q", "--output=json", str(k)])
    assert (rk.returncode, rk.stdout, rk.stderr) == (rq.returncode, rq.stdout, rq.stderr)
