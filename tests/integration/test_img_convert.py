"""kite img convert: content (qemu-img compare and checksums), sparseness, compression,
-S, -n, multiple sources, backing chains; every output passes qemu-img check."""
import hashlib
import json
import os

import pytest

from conftest import run

SIZE = 24 << 20


def sh(*argv):
    r = run(list(argv))
    assert r.returncode == 0, " ".join(map(str, argv)) + "\n" + r.stdout + r.stderr
    return r.stdout


def make_raw(path, size=SIZE, seed=1):
    """A fixed-seed mix of random data, runs of one byte, zero blocks and holes."""
    import random
    rnd = random.Random(seed)
    with open(path, "wb") as f:
        f.truncate(size)
        off = 0
        while off < size:
            n = min(size - off, rnd.choice([4096, 65536, 300000, 1 << 20]))
            kind = rnd.random()
            if kind < 0.35:
                f.seek(off)
                f.write(rnd.randbytes(n))
            elif kind < 0.5:
                f.seek(off)
                f.write(bytes([rnd.randrange(1, 256)]) * n)
            elif kind < 0.6:
                f.seek(off)
                f.write(bytes(n))  # written zeros: must come out sparse too
            off += n + rnd.choice([0, 0, 4096, 1 << 20])
    return path


def digest(path, fmt=None):
    out = path.parent / (path.name + ".check.raw")
    sh("qemu-img", "convert", *(["-f", fmt] if fmt else []), "-O", "raw", str(path), str(out))
    h = hashlib.sha256(out.read_bytes()).hexdigest()
    out.unlink()
    return h


def check_clean(path):
    r = run(["qemu-img", "check", str(path)])
    assert r.returncode == 0, r.stdout + r.stderr
    assert "No errors were found on the image." in r.stdout
    assert "leaked" not in r.stdout


def allocated(path):
    return os.stat(path).st_blocks * 512


@pytest.fixture
def src(tmp_path):
    return make_raw(tmp_path / "vm01.img")


def test_seed_raw_to_qcow2(kite, src, tmp_path):
    out = tmp_path / "vm01.qcow2"
    r = run([kite, "img", "convert", "-f", "raw", "-O", "qcow2", "vm01.img", "vm01.qcow2"],
            cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    assert r.stdout == ""
    check_clean(out)
    assert run(["qemu-img", "compare", "-f", "raw", "-F", "qcow2", str(src),
                str(out)]).returncode == 0
    # qemu-img's own conversion allocates the same: zeros were detected and skipped
    ref = tmp_path / "ref.qcow2"
    sh("qemu-img", "convert", "-f", "raw", "-O", "qcow2", str(src), str(ref))
    assert allocated(out) <= allocated(ref) * 1.05 + 65536


def test_round_trip_keeps_content_and_sparseness(kite, src, tmp_path):
    q, back = tmp_path / "a.qcow2", tmp_path / "back.img"
    assert run([kite, "img", "convert", "-O", "qcow2", str(src), str(q)]).returncode == 0
    r = run([kite, "img", "convert", "-f", "qcow2", "-O", "raw", str(q), str(back)])
    assert r.returncode == 0, r.stderr
    assert back.read_bytes() == src.read_bytes()
    # zero runs and holes of the source are holes in the result
    ref = tmp_path / "ref.img"
    sh("qemu-img", "convert", "-O", "raw", str(src), str(ref))
    assert allocated(back) <= allocated(ref) + 65536
    assert allocated(back) < allocated(src)


@pytest.mark.parametrize("opts", ["compression_type=zlib", "compression_type=zstd",
                                  "cluster_size=4K", "cluster_size=2M,compression_type=zstd"])
def test_compressed(kite, src, tmp_path, opts):
    out = tmp_path / "c.qcow2"
    r = run([kite, "img", "convert", "-c", "-O", "qcow2", "-o", opts, str(src), str(out)])
    assert r.returncode == 0, r.stderr
    check_clean(out)
    assert digest(out) == digest(src, "raw")
    r = run(["qemu-img", "check", "--output=json", str(out)])
    assert json.loads(r.stdout).get("compressed-clusters", 0) > 0
    info = json.loads(sh("qemu-img", "info", "--output=json", str(out)))
    want = "zstd" if "zstd" in opts else "zlib"
    assert info["format-specific"]["data"]["compression-type"] == want


@pytest.mark.parametrize("ctype", ["zlib", "zstd"])
def test_compressed_clusters_as_qemu(kite, tmp_path, ctype):
    """Random clusters are stored plainly, compressible ones compressed, as qemu-img does,
    including data whose bytes are perfectly evenly spread but repeat (kite skips the
    compressor for clusters it can tell are incompressible)."""
    import random
    rnd = random.Random(7)
    perm = list(range(256))
    rnd.shuffle(perm)
    src = tmp_path / "mix.raw"
    # cluster 0: a permutation of all byte values, repeated; 1: random; 2: text; 3: random
    src.write_bytes(bytes(perm) * 256 + rnd.randbytes(65536)
                    + (b"kite img convert -c " * 3277)[:65536] + rnd.randbytes(65536))
    counts = {}
    for tool in (kite, "qemu-img"):
        out = tmp_path / f"{os.path.basename(tool)}.qcow2"
        argv = [tool] + (["img"] if tool == kite else [])
        sh(*argv, "convert", "-c", "-O", "qcow2", "-o", f"compression_type={ctype}", str(src),
           str(out))
        check_clean(out)
        sh("qemu-img", "compare", str(src), str(out))
        r = run(["qemu-img", "check", "--output=json", str(out)])
        counts[tool] = json.loads(r.stdout)["compressed-clusters"]
    assert counts[kite] == counts["qemu-img"] == 2


@pytest.mark.parametrize("opts", ["compat=0.10", "cluster_size=512,refcount_bits=1",
                                  "cluster_size=2M,refcount_bits=64", "lazy_refcounts=on",
                                  "extended_l2=on", "preallocation=metadata"])
def test_output_options(kite, src, tmp_path, opts):
    out = tmp_path / "o.qcow2"
    r = run([kite, "img", "convert", "-O", "qcow2", "-o", opts, str(src), str(out)])
    assert r.returncode == 0, r.stderr
    check_clean(out)
    assert run(["qemu-img", "compare", str(src), str(out)]).returncode == 0


def test_sparse_size_zero_allocates_everything(kite, src, tmp_path):
    out = tmp_path / "full.img"
    r = run([kite, "img", "convert", "-S", "0", "-O", "raw", str(src), str(out)])
    assert r.returncode == 0, r.stderr
    assert out.read_bytes() == src.read_bytes()
    assert allocated(out) >= SIZE


def test_existing_target_with_n(kite, src, tmp_path):
    out = tmp_path / "old.qcow2"
    sh("qemu-img", "create", "-q", "-f", "qcow2", str(out), str(SIZE))
    # old content everywhere: what the source has as zeros must be zeroed
    sh("qemu-io", "-c", f"write -P 0xee 0 {SIZE}", str(out))
    r = run([kite, "img", "convert", "-n", "-O", "qcow2", str(src), str(out)])
    assert r.returncode == 0, r.stderr
    check_clean(out)
    assert run(["qemu-img", "compare", str(src), str(out)]).returncode == 0
    # the same with -c: zero clusters of the source must not keep the old data
    sh("qemu-io", "-c", f"write -P 0xee 0 {SIZE}", str(out))
    r = run([kite, "img", "convert", "-n", "-c", "-O", "qcow2", str(src), str(out)])
    assert r.returncode == 0, r.stderr
    check_clean(out)
    assert run(["qemu-img", "compare", str(src), str(out)]).returncode == 0
    small = tmp_path / "small.qcow2"
    sh("qemu-img", "create", "-q", "-f", "qcow2", str(small), "1M")
    r = run([kite, "img", "convert", "-n", "-O", "qcow2", str(src), str(small)])
    assert r.returncode == 1 and r.stderr.startswith("kite: error: ")


def qemu_map(path):
    """The map without host offsets, adjacent equal entries joined (a compressed cluster has
    no offset: where kite stores a cluster that would shrink by under 1/256 plainly, qemu-img
    compresses it; both read the same and are allocated alike)."""
    out = []
    for e in json.loads(sh("qemu-img", "map", "--output=json", str(path))):
        e = {k: v for k, v in e.items() if k != "offset"}
        if out and {**out[-1], "start": 0, "length": 0} == {**e, "start": 0, "length": 0}:
            out[-1]["length"] += e["length"]
        else:
            out.append(e)
    return out


@pytest.mark.parametrize("args", [["-n"], ["-c", "-S", "0"], ["-n", "-c"], ["-S", "0"]],
                         ids=["n", "c-S0", "n-c", "S0"])
def test_allocation_as_qemu_img_leaves_it(kite, src, tmp_path, args):
    """What convert allocates, zero clusters included, is what qemu-img allocates: -n into an
    empty image writes zero clusters for the source's zeros, -c -S 0 compresses every
    cluster."""
    outs = {}
    for side, tool in (("k", [kite, "img"]), ("q", ["qemu-img"])):
        outs[side] = tmp_path / f"{side}.qcow2"
        if "-n" in args:
            sh("qemu-img", "create", "-q", "-f", "qcow2", str(outs[side]), str(SIZE))
        r = run(tool + ["convert", *args, "-f", "raw", "-O", "qcow2", str(src),
                        str(outs[side])])
        assert r.returncode == 0, r.stderr
    assert qemu_map(outs["k"]) == qemu_map(outs["q"])
    assert run(["qemu-img", "compare", str(outs["k"]), str(src)]).returncode == 0


def test_n_takes_the_target_format_as_given(kite, src, tmp_path):
    """-n -O raw writes a raw image over whatever the target's bytes look like (here a qcow2
    header), as qemu-img does, instead of probing it."""
    for side, tool in (("k", [kite, "img"]), ("q", ["qemu-img"])):
        out = tmp_path / f"{side}.img"
        sh("qemu-img", "create", "-q", "-f", "qcow2", str(out), str(SIZE))
        os.truncate(out, SIZE)
        r = run(tool + ["convert", "-n", "-f", "raw", "-O", "raw", str(src), str(out)])
        assert r.returncode == 0, r.stderr
    assert (tmp_path / "k.img").read_bytes() == (tmp_path / "q.img").read_bytes()


def test_several_sources_concatenate(kite, tmp_path):
    a = make_raw(tmp_path / "a.img", 3 << 20, seed=2)
    b = make_raw(tmp_path / "b.img", (1 << 20) + 512, seed=3)
    out, ref = tmp_path / "ab.qcow2", tmp_path / "ref.qcow2"
    r = run([kite, "img", "convert", "-O", "qcow2", str(a), str(b), str(out)])
    assert r.returncode == 0, r.stderr
    sh("qemu-img", "convert", "-O", "qcow2", str(a), str(b), str(ref))
    check_clean(out)
    assert run(["qemu-img", "compare", "-s", str(out), str(ref)]).returncode == 0


def test_backing_chain_is_flattened(kite, tmp_path):
    base, top = tmp_path / "base.qcow2", tmp_path / "top.qcow2"
    sh("qemu-img", "create", "-q", "-f", "qcow2", str(base), "8M")
    sh("qemu-io", "-c", "write -P 1 0 4M", str(base))
    sh("qemu-img", "create", "-q", "-f", "qcow2", "-b", "base.qcow2", "-F", "qcow2", str(top))
    sh("qemu-io", "-c", "write -P 2 1M 1M", "-c", "write -z 3M 64k", str(top))
    out = tmp_path / "flat.qcow2"
    r = run([kite, "img", "convert", "-O", "qcow2", str(top), str(out)])
    assert r.returncode == 0, r.stderr
    check_clean(out)
    assert "backing-filename" not in json.loads(sh("qemu-img", "info", "--output=json",
                                                    str(out)))
    assert digest(out) == digest(top)


def test_progress_and_quiet(kite, src, tmp_path):
    r = run([kite, "img", "convert", "-p", "-O", "qcow2", str(src), str(tmp_path / "p.qcow2")],
            text=False)
    assert r.returncode == 0, r.stderr
    # qemu-img's progress line, redrawn in place
    assert r.stdout.startswith(b"    (0.00/100%)\r")
    assert r.stdout.endswith(b"    (100.00/100%)\r\n")
    assert b"\n" not in r.stdout[:-1]
    r = run([kite, "img", "convert", "-p", "-q", "-O", "qcow2", str(src),
             str(tmp_path / "q.qcow2")])
    assert r.returncode == 0 and r.stdout == ""


def test_cache_none(kite, src, tmp_path):
    out = tmp_path / "nc.qcow2"
    r = run([kite, "img", "convert", "-t", "none", "-O", "qcow2", str(src), str(out)])
    assert r.returncode == 0, r.stderr
    check_clean(out)
    assert run(["qemu-img", "compare", str(src), str(out)]).returncode == 0


@pytest.mark.parametrize("args,what", [
    (["-O", "qcow2", "missing.img", "o.qcow2"], "missing.img"),
    (["-O", "qcow2", "--bogus", "vm01.img", "o.qcow2"], "--bogus"),
    (["-O", "vmdk", "vm01.img", "o.vmdk"], "vmdk"),
    (["-O", "qcow2", "-S", "100", "vm01.img", "o.qcow2"], "-S"),
    (["-O", "raw", "-c", "vm01.img", "o.img"], "compress"),
    (["-f", "qcow2", "-O", "raw", "vm01.img", "o.img"], "qcow2"),
    (["-O", "qcow2", "vm01.img"], "output"),
    (["-O", "raw", "vm01.img", "vm01.img"], "same file"),
    (["-O", "raw", "-f", "raw", "vm01.img", "./vm01.img"], "same file"),
])
def test_bad_input(kite, src, tmp_path, args, what):
    before = hashlib.sha256(src.read_bytes()).hexdigest()
    r = run([kite, "img", "convert", *args], cwd=tmp_path)
    assert r.returncode == 1
    assert r.stderr.startswith("kite: error: "), r.stderr
    assert what in r.stderr
    assert hashlib.sha256(src.read_bytes()).hexdigest() == before


def test_backing_file_for_output(kite, tmp_path):
    base, top = tmp_path / "base.qcow2", tmp_path / "top.qcow2"
    sh("qemu-img", "create", "-q", "-f", "qcow2", str(base), "8M")
    sh("qemu-io", "-c", "write -P 1 0 4M", "-c", "write -P 5 6M 1M", str(base))
    sh("qemu-img", "create", "-q", "-f", "qcow2", "-b", "base.qcow2", "-F", "qcow2", str(top))
    sh("qemu-io", "-c", "write -P 2 1M 64k", "-c", "write -z 2M 64k", str(top))
    # -B with the source's own backing file: only what the top changes is written
    out = tmp_path / "out.qcow2"
    r = run([kite, "img", "convert", "-O", "qcow2", "-B", "base.qcow2", "-F", "qcow2",
             str(top), str(out)])
    assert r.returncode == 0, r.stderr
    check_clean(out)
    info = json.loads(sh("qemu-img", "info", "--output=json", str(out)))
    assert info["backing-filename"] == "base.qcow2"
    assert info["backing-filename-format"] == "qcow2"
    assert digest(out) == digest(top)
    present = [e for e in json.loads(sh("qemu-img", "map", "--output=json", str(out)))
               if e["present"] and e["depth"] == 0]
    assert sum(e["length"] for e in present) == 128 << 10
    # -B with another file: still the source's content, compressed too with -c
    other = tmp_path / "other.img"
    sh("qemu-img", "create", "-q", "-f", "raw", str(other), "8M")
    sh("qemu-io", "-f", "raw", "-c", "write -P 9 0 8M", str(other))
    for extra in ([], ["-c"]):
        out2 = tmp_path / "out2.qcow2"
        r = run([kite, "img", "convert", *extra, "-O", "qcow2", "-B", "other.img", "-F", "raw",
                 str(top), str(out2)])
        assert r.returncode == 0, r.stderr
        check_clean(out2)
        assert json.loads(sh("qemu-img", "info", "--output=json",
                             str(out2)))["backing-filename-format"] == "raw"
        assert digest(out2) == digest(top)
        compressed = "100.00% compressed" in sh("qemu-img", "check", str(out2))
        assert compressed == bool(extra)
        out2.unlink()
    # qemu-img 7.2 probes no backing format for a new image: -B needs -F
    cmd = ["convert", "-O", "qcow2", "-B", "other.img", str(top), str(out2)]
    q, r = run(["qemu-img", *cmd], cwd=tmp_path), run([kite, "img", *cmd], cwd=tmp_path)
    assert q.returncode == r.returncode == 1
    assert r.stderr == q.stderr.replace("qemu-img: ", "kite: error: ")
    assert not out2.exists()
    r = run([kite, "img", "convert", "-O", "raw", "-B", "base.qcow2", str(top),
             str(tmp_path / "x.img")])
    assert r.returncode == 1 and r.stderr.startswith("kite: error: ")


@pytest.mark.parametrize("args", [
    ["-m", "0"], ["-m", "17"], ["-m", "x"], ["-C", "-c"], ["-T", "bogus"], ["-S", "32M"],
    ["-n", "-o", "cluster_size=4k"],
])
def test_options_qemu_img_refuses(kite, src, tmp_path, args):
    """Options qemu-img rejects are rejected, not ignored: same exit code, nothing written."""
    out = tmp_path / "o.qcow2"
    sh("qemu-img", "create", "-q", "-f", "qcow2", str(out), str(SIZE))
    before = out.read_bytes()
    cmd = ["convert", *args, "-O", "qcow2", "vm01.img", "o.qcow2"]
    q = run(["qemu-img", *cmd], cwd=tmp_path)
    r = run([kite, "img", *cmd], cwd=tmp_path)
    assert q.returncode == r.returncode == 1, q.stderr + r.stderr
    assert r.stderr.startswith("kite: error: "), r.stderr
    assert out.read_bytes() == before


def test_backing_with_several_inputs_refused(kite, src, tmp_path):
    cmd = ["convert", "-B", "vm01.img", "-F", "raw", "-O", "qcow2", "vm01.img", "vm01.img",
           "o.qcow2"]
    q, r = run(["qemu-img", *cmd], cwd=tmp_path), run([kite, "img", *cmd], cwd=tmp_path)
    assert q.returncode == r.returncode == 1, q.stderr + r.stderr
    assert "-B" in r.stderr and not (tmp_path / "o.qcow2").exists()


@pytest.mark.parametrize("args", [["-m", "4", "-W"], ["-C"], ["-T", "none"], ["-U"],
                                  ["-S", "16M"], ["-t", "writeback", "-T", "writethrough"]])
def test_options_without_visible_effect(kite, src, tmp_path, args):
    """-m -W -C -T -U change only speed or locking in qemu-img: kite's output is the same
    as without them, with the same allocation as qemu-img's map shows for its output."""
    k, q = tmp_path / "k.qcow2", tmp_path / "q.qcow2"
    sh(kite, "img", "convert", *args, "-O", "qcow2", str(src), str(k))
    sh("qemu-img", "convert", *args, "-O", "qcow2", str(src), str(q))
    check_clean(k)
    assert run(["qemu-img", "compare", "-s", str(k), str(q)]).returncode == 0

    def alloc(p):  # guest ranges by kind, whatever the host offsets (-m -W reorder them)
        out = []
        for e in json.loads(sh("qemu-img", "map", "--output=json", str(p))):
            if out and out[-1][2:] == (e["data"], e["zero"]):
                out[-1] = (out[-1][0], out[-1][1] + e["length"], e["data"], e["zero"])
            else:
                out.append((e["start"], e["length"], e["data"], e["zero"]))
        return out
    assert alloc(k) == alloc(q)


@pytest.mark.parametrize("param", ["snapshot.name=first", "first", "1", "snapshot.id=1",
                                   "snapshot.id=1,snapshot.name=first", "snapshot.name=nope",
                                   "snapshot.id=1,snapshot.name=x", "bogus=1", "2"])
def test_convert_from_an_internal_snapshot(kite, tmp_path, param):
    """-l reads the source as an internal snapshot left it (qemu-img's -l forms: id or name,
    snapshot.id=, snapshot.name=), at the image's current size."""
    img = tmp_path / "sn.qcow2"
    sh("qemu-img", "create", "-q", "-f", "qcow2", str(img), "4M")
    sh("qemu-io", "-c", "write -P 1 0 1M", str(img))
    sh("qemu-img", "snapshot", "-c", "first", str(img))
    sh("qemu-io", "-c", "write -P 2 0 2M", str(img))
    sh("qemu-img", "snapshot", "-c", "1", str(img))  # a name that is also an id
    sh("qemu-img", "resize", str(img), "8M")
    q = run(["qemu-img", "convert", "-l", param, "-O", "raw", str(img), str(tmp_path / "q")])
    k = run([kite, "img", "convert", "-l", param, "-O", "raw", str(img), str(tmp_path / "k")])
    assert (k.returncode, k.stdout) == (q.returncode, q.stdout)
    assert k.stderr == q.stderr.replace("qemu-img: ", "kite: error: ")
    if q.returncode == 0:
        assert (tmp_path / "k").read_bytes() == (tmp_path / "q").read_bytes()
    else:
        assert not (tmp_path / "k").exists()


def test_convert_snapshot_refusals(kite, tmp_path):
    raw = tmp_path / "r.img"
    raw.write_bytes(bytes(65536))
    for argv in (["-l", "x", "-f", "raw", "-O", "raw", str(raw), str(tmp_path / "o")],
                 ["-l", "x", "-f", "raw", "-O", "raw", str(raw), str(raw), str(tmp_path / "o")]):
        q, k = run(["qemu-img", "convert", *argv]), run([kite, "img", "convert", *argv])
        assert q.returncode == k.returncode == 1
        assert k.stderr == q.stderr.replace("qemu-img: ", "kite: error: ")
