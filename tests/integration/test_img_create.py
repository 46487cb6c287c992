"""kite img create and resize: qemu-img's syntax and "Formatting" line, files qemu-img accepts."""
import json
import os

import pytest

from conftest import run

CREATE_CASES = [
    ["-f", "qcow2", "-o", "cluster_size=128K", "virt_disk.qcow2", "20G"],
    ["-f", "qcow2", "disk.qcow2", "1000"],
    ["-f", "raw", "disk.img", "64M"],
    ["-f", "raw", "-o", "preallocation=falloc", "disk.img", "1M"],
    ["-f", "qcow2", "-o", "compat=0.10,preallocation=metadata", "disk.qcow2", "8M"],
    ["-f", "qcow2", "-o", "cluster_size=512,refcount_bits=1", "disk.qcow2", "4M"],
    ["-f", "qcow2", "-o", "cluster_size=2M,refcount_bits=64,lazy_refcounts=on", "disk.qcow2",
     "1G"],
    ["-f", "qcow2", "-o", "extended_l2=on,compression_type=zstd", "disk.qcow2", "1G"],
    ["-f", "qcow2", "-o", "preallocation=full,cluster_size=4K", "disk.qcow2", "2M"],
    ["-f", "qcow2", "-o", "preallocation=falloc", "disk.qcow2", "2M"],
    ["-f", "qcow2", "-o", "extended_l2=on,preallocation=metadata", "disk.qcow2", "4M"],
    ["-f", "qcow2", "-o", "cluster_size=0x10000", "disk.qcow2", "0x100000"],
    ["-f", "raw", "-o", "preallocation=falloc,extent_size_hint=1M", "disk.img", "1M"],
    ["-f", "qcow2", "-o", "extent_size_hint=256K,compat=0.10", "disk.qcow2", "1M"],
]


def qemu_json(*args):
    r = run(["qemu-img", *args, "--output=json"])
    assert r.returncode == 0, r.stderr
    return json.loads(r.stdout)


@pytest.mark.parametrize("args", CREATE_CASES, ids=lambda a: " ".join(a))
def test_create_like_qemu(kite, tmp_path, args):
    mine, theirs = tmp_path / "k", tmp_path / "q"
    mine.mkdir()
    theirs.mkdir()
    r = run([kite, "img", "create", *args], cwd=mine)
    q = run(["qemu-img", "create", *args], cwd=theirs)
    assert q.returncode == 0, q.stderr
    assert r.returncode == 0, r.stderr
    assert r.stdout == q.stdout  # the "Formatting ..." line, word for word
    name = args[-2]
    k_img, q_img = mine / name, theirs / name
    if name.endswith(".qcow2"):
        c = run(["qemu-img", "check", str(k_img)])
        assert c.returncode == 0, c.stdout + c.stderr
        assert "No errors were found on the image." in c.stdout
    ki = qemu_json("info", str(k_img))
    qi = qemu_json("info", str(q_img))
    for key in ("virtual-size", "format", "cluster-size", "format-specific"):
        assert ki.get(key) == qi.get(key), key
    if name.endswith(".qcow2"):
        # preallocation: the same map (allocated ranges and zero flags; offsets may differ)
        strip = lambda m: [{k: v for k, v in e.items() if k != "offset"} for e in m]
        assert strip(qemu_json("map", str(k_img))) == strip(qemu_json("map", str(q_img)))
    r = run(["qemu-img", "compare", str(k_img), str(q_img)])
    assert r.returncode == 0, r.stdout


def test_formatting_line_with_compat_and_backing(kite, tmp_path):
    """compat= comes before backing_file= on qemu-img's line."""
    run(["qemu-img", "create", "-q", "-f", "raw", str(tmp_path / "b.raw"), "1M"])
    args = ["-f", "qcow2", "-o", "compat=0.10", "-b", "b.raw", "-F", "raw"]
    q = run(["qemu-img", "create", *args, "q.qcow2"], cwd=tmp_path)
    k = run([kite, "img", "create", *args, "k.qcow2"], cwd=tmp_path)
    assert k.returncode == q.returncode == 0, k.stderr
    assert k.stdout == q.stdout.replace("q.qcow2", "k.qcow2")


def test_create_with_backing_takes_its_size(kite, tmp_path):
    run(["qemu-img", "create", "-q", "-f", "qcow2", str(tmp_path / "base.qcow2"), "3M"])
    r = run([kite, "img", "create", "-f", "qcow2", "-b", "base.qcow2", "-F", "qcow2",
             "top.qcow2"], cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    assert r.stdout == ("Formatting 'top.qcow2', fmt=qcow2 cluster_size=65536 extended_l2=off "
                        "compression_type=zlib size=3145728 backing_file=base.qcow2 "
                        "backing_fmt=qcow2 lazy_refcounts=off refcount_bits=16\n")
    info = qemu_json("info", str(tmp_path / "top.qcow2"))
    assert info["backing-filename"] == "base.qcow2"
    assert info["backing-filename-format"] == "qcow2"
    assert info["virtual-size"] == 3 << 20
    assert run(["qemu-img", "check", str(tmp_path / "top.qcow2")]).returncode == 0


@pytest.mark.parametrize("prealloc", ["metadata", "falloc", "full"])
@pytest.mark.parametrize("extl2", ["on", "off"])
def test_preallocation_over_a_backing_file(kite, tmp_path, prealloc, extl2):
    """Preallocated clusters must not hide the backing file: with subclusters they are
    allocated but marked unallocated (reads come from the backing file), without them
    qemu-img refuses, and so does kite."""
    run(["qemu-img", "create", "-q", "-f", "raw", str(tmp_path / "base.raw"), "4M"])
    run(["qemu-io", "-f", "raw", "-c", "write -P 0x5a 0 3M", str(tmp_path / "base.raw")])
    args = ["-f", "qcow2", "-o", f"extended_l2={extl2},preallocation={prealloc}",
            "-b", "base.raw", "-F", "raw"]
    q = run(["qemu-img", "create", *args, "q.qcow2"], cwd=tmp_path)
    k = run([kite, "img", "create", *args, "k.qcow2"], cwd=tmp_path)
    assert k.returncode == q.returncode, k.stderr
    if q.returncode:
        assert k.stderr == q.stderr.replace("qemu-img: q.qcow2", "kite: error: k.qcow2")
        assert not (tmp_path / "k.qcow2").exists()
        return
    r = run(["qemu-io", "-c", "read -P 0x5a 0 3M", "-c", "read -P 0 3M 1M",
             str(tmp_path / "k.qcow2")])
    assert r.returncode == 0 and "verification failed" not in r.stdout, r.stdout
    strip = lambda m: [{k: v for k, v in e.items() if k != "offset"} for e in m]
    assert strip(qemu_json("map", str(tmp_path / "k.qcow2"))) == \
        strip(qemu_json("map", str(tmp_path / "q.qcow2")))
    assert run(["qemu-img", "check", str(tmp_path / "k.qcow2")]).returncode == 0


@pytest.mark.parametrize("args,what", [
    (["-f", "qcow2", "x.qcow2", "12X"], "size"),
    (["-f", "qcow2", "x.qcow2", "-5"], "option"),
    (["-f", "qcow2", "x.qcow2"], "size"),
    (["-f", "qcow2", "--frobnicate", "x.qcow2", "1M"], "option"),
    (["-f", "qcow2", "-o", "cluster_size=3000", "x.qcow2", "1M"], "cluster_size"),
    (["-f", "qcow2", "-o", "refcount_bits=3", "x.qcow2", "1M"], "refcount_bits"),
    (["-f", "qcow2", "-o", "colour=blue", "x.qcow2", "1M"], "colour"),
    (["-f", "qcow2", "-b", "missing.qcow2", "-F", "qcow2", "x.qcow2"], "missing.qcow2"),
    (["-f", "qcow2", "-b", "base.img", "x.qcow2", "1M"], "backing format"),
    (["-f", "vmdk", "x.vmdk", "1M"], "vmdk"),
])
def test_create_bad_input(kite, tmp_path, args, what):
    (tmp_path / "base.img").write_bytes(b"\0" * 4096)
    r = run([kite, "img", "create", *args], cwd=tmp_path)
    assert r.returncode == 1
    assert r.stderr.startswith("kite: error: ")
    assert what in r.stderr
    assert not (tmp_path / args[-2 if args[-1][0].isdigit() else -1]).exists() or \
        args[-1] == "x.qcow2" and not (tmp_path / "x.qcow2").exists()


@pytest.mark.parametrize("fmt", ["raw", "qcow2"])
def test_create_option_help(kite, tmp_path, fmt):
    """-o help lists the options as qemu-img does, less those kite does not implement
    (qcow2's encryption and external data file, README "kite img")."""
    q = run(["qemu-img", "create", "-f", fmt, "-o", "help"]).stdout.splitlines()
    k = run([kite, "img", "create", "-f", fmt, "-o", "help"]).stdout.splitlines()
    missing = [line for line in q if line not in k]
    assert all(m.strip().startswith(("encrypt", "data_file")) for m in missing), missing
    assert [line for line in q if line not in missing] == k


def test_seed_resize_grow(kite, tmp_path):
    img = tmp_path / "virt_disk.qcow2"
    assert run([kite, "img", "create", "-q", "-f", "qcow2", "-o", "cluster_size=128K",
                str(img), "20G"]).returncode == 0
    run(["qemu-io", "-c", "write -P 0x5a 19G 1M", str(img)])
    r = run([kite, "img", "resize", str(img), "+10G"])
    assert r.returncode == 0, r.stderr
    assert r.stdout == "Image resized.\n"
    assert qemu_json("info", str(img))["virtual-size"] == 30 << 30
    assert run(["qemu-img", "check", str(img)]).returncode == 0
    r = run(["qemu-io", "-c", "read -P 0x5a 19G 1M", "-c", "read -P 0 29G 1M", str(img)])
    assert "Pattern verification failed" not in r.stdout, r.stdout


@pytest.mark.parametrize("fmt", ["raw", "qcow2"])
def test_resize_shrink_needs_flag(kite, tmp_path, fmt):
    img = tmp_path / f"d.{fmt}"
    run(["qemu-img", "create", "-q", "-f", fmt, str(img), "8M"])
    run(["qemu-io", "-f", fmt, "-c", "write -P 7 0 1M", str(img)])
    r = run([kite, "img", "resize", "-f", fmt, str(img), "-4M"])
    assert r.returncode == 1
    assert "--shrink" in r.stderr
    assert qemu_json("info", "-f", fmt, str(img))["virtual-size"] == 8 << 20
    r = run([kite, "img", "resize", "-f", fmt, "--shrink", str(img), "-4M"])
    assert r.returncode == 0, r.stderr
    assert qemu_json("info", "-f", fmt, str(img))["virtual-size"] == 4 << 20
    r = run(["qemu-io", "-f", fmt, "-c", "read -P 7 0 1M", str(img)])
    assert "Pattern verification failed" not in r.stdout
    if fmt == "qcow2":
        assert run(["qemu-img", "check", str(img)]).returncode == 0
    r = run([kite, "img", "resize", "-f", fmt, str(img), "2Q"])
    assert r.returncode == 1 and r.stderr.startswith("kite: error: ")


def test_help(kite, tmp_path):
    r = run([kite, "img", "--help"])
    assert r.returncode == 0
    for verb in ("create", "info", "convert", "resize", "check", "snapshot", "compare", "map",
                 "rebase", "commit", "measure"):
        assert f"  {verb} " in r.stdout
    r = run([kite, "img", "create", "-f", "qcow2", "-o", "help"])
    assert r.returncode == 0
    assert r.stdout.startswith("Supported qcow2 options:\n")
    assert "  cluster_size=<size>" in r.stdout
    r = run([kite, "img", "create", "-f", "raw", "-o", "help"])
    assert "cluster_size" not in r.stdout and "  size=<size>" in r.stdout
    r = run([kite, "img"])
    assert r.returncode == 1 and "usage: kite img" in r.stderr
    r = run([kite, "img", "frobnicate"])
    assert r.returncode == 1 and r.stderr.startswith("kite: error: img: unknown verb")


def test_empty_images(kite, tmp_path):
    raw = tmp_path / "empty.img"
    raw.write_bytes(b"")
    for args in (["map", "--output=json"], ["map"], ["info", "--output=json"]):
        r = run([kite, "img", *args, str(raw)])
        q = run(["qemu-img", *args, str(raw)])
        assert r.returncode == q.returncode == 0, r.stderr
        if args[0] == "map":
            assert r.stdout == q.stdout
        else:
            assert json.loads(r.stdout) == json.loads(q.stdout)


def test_zero_size_qcow2_is_clean(kite, tmp_path):
    img = tmp_path / "zero.qcow2"
    r = run([kite, "img", "create", "-f", "qcow2", str(img), "0"])
    assert r.returncode == 0, r.stderr
    c = run(["qemu-img", "check", str(img)])
    assert c.returncode == 0, c.stdout + c.stderr


def merged_map(path, drop):
    """qemu-img's JSON map without the keys in `drop`, adjacent equal entries joined."""
    out = []
    for e in qemu_json("map", str(path)):
        e = {k: v for k, v in e.items() if k not in drop}
        if out and {**out[-1], "start": 0, "length": 0} == {**e, "start": 0, "length": 0}:
            out[-1]["length"] += e["length"]
        else:
            out.append(e)
    return out


@pytest.mark.parametrize("fmt", ["qcow2", "raw"])
@pytest.mark.parametrize("mode", ["metadata", "falloc", "full"])
def test_resize_preallocation(kite, tmp_path, fmt, mode):
    """--preallocation allocates the grown part as qemu-img does (raw refuses metadata): the
    same exit code, content and allocation; qcow2's zero flags follow host-file holes, which
    depend on where each tool put its clusters, so they are left out."""
    imgs = {}
    for side in ("k", "q"):
        imgs[side] = tmp_path / f"{side}.{fmt}"
        run(["qemu-img", "create", "-q", "-f", fmt, str(imgs[side]), "1000448"])
        run(["qemu-io", "-f", fmt, "-c", "write -P 1 0 100k", str(imgs[side])])
    args = ["resize", "-f", fmt, f"--preallocation={mode}"]
    q = run(["qemu-img", *args, str(imgs["q"]), "3000320"])
    k = run([kite, "img", *args, str(imgs["k"]), "3000320"])
    assert (k.returncode, k.stdout) == (q.returncode, q.stdout), k.stderr
    assert k.stderr == q.stderr.replace("qemu-img: ", "kite: error: ")
    assert run(["qemu-img", "compare", "-f", fmt, "-F", fmt, str(imgs["k"]),
                str(imgs["q"])]).returncode == 0
    drop = ("offset", "zero") if fmt == "qcow2" and mode == "metadata" else ("offset",)
    assert merged_map(imgs["k"], drop) == merged_map(imgs["q"], drop)
    if mode != "metadata":  # the space is reserved on the host
        assert os.stat(imgs["k"]).st_blocks * 512 >= 3000320 - 1000448
    if fmt == "qcow2":
        assert run(["qemu-img", "check", str(imgs["k"])]).returncode == 0


@pytest.mark.parametrize("args", [["--preallocation=bogus", "IMG", "2M"],
                                  ["--shrink", "--preallocation=full", "IMG", "512K"],
                                  ["IMG", "3000000"]], ids=["bogus", "shrink", "unaligned"])
def test_resize_refusals_read_as_qemu_img(kite, tmp_path, args):
    img = tmp_path / "r.qcow2"
    run(["qemu-img", "create", "-q", "-f", "qcow2", str(img), "1M"])
    before = img.read_bytes()
    argv = ["resize"] + [str(img) if a == "IMG" else a for a in args]
    q, k = run(["qemu-img", *argv]), run([kite, "img", *argv])
    assert q.returncode == k.returncode == 1
    assert k.stderr == q.stderr.replace("qemu-img: ", "kite: error: ")
    assert img.read_bytes() == before


def test_resize_with_snapshots_and_shrink_gives_space_back(kite, tmp_path):
    """qemu-img 7.2 resizes a v3 image that has snapshots (not a v2 one), and a shrink cuts
    the file after its last cluster in use."""
    for side in ("k", "q"):
        img = tmp_path / f"{side}.qcow2"
        run(["qemu-img", "create", "-q", "-f", "qcow2", str(img), "4M"])
        run(["qemu-io", "-c", "write -P 1 0 4M", str(img)])
    tool = {"k": [kite, "img"], "q": ["qemu-img"]}
    for side in ("k", "q"):
        img = str(tmp_path / f"{side}.qcow2")
        assert run(["qemu-img", "snapshot", "-c", "s", img]).returncode == 0
        r = run(tool[side] + ["resize", img, "8M"])
        assert (r.returncode, r.stdout) == (0, "Image resized.\n"), r.stderr
        assert run(["qemu-img", "snapshot", "-d", "s", img]).returncode == 0
        r = run(tool[side] + ["resize", "--shrink", img, "1M"])
        assert (r.returncode, r.stdout) == (0, "Image resized.\n"), r.stderr
        assert run(["qemu-img", "check", img]).returncode == 0
    k, q = tmp_path / "k.qcow2", tmp_path / "q.qcow2"
    assert os.path.getsize(k) <= os.path.getsize(q)
    assert os.path.getsize(k) < 2 << 20
    assert run(["qemu-img", "compare", str(k), str(q)]).returncode == 0
    v2 = tmp_path / "v2.qcow2"
    run(["qemu-img", "create", "-q", "-f", "qcow2", "-o", "compat=0.10", str(v2), "1M"])
    run(["qemu-img", "snapshot", "-c", "s", str(v2)])
    q, k = run(["qemu-img", "resize", str(v2), "2M"]), run([kite, "img", "resize", str(v2), "2M"])
    assert q.returncode == k.returncode == 1
    assert k.stderr == q.stderr.replace("qemu-img: ", "kite: error: ")


@pytest.mark.parametrize("opts,size", [
    ("", "1M"), ("", "0"), ("cluster_size=4K", "1M"), ("cluster_size=512", "100M"),
    ("cluster_size=8K,compat=0.10", "1M"), ("lazy_refcounts=on,refcount_bits=1", "3G"),
    ("extended_l2=on,compression_type=zstd", "1M"), ("cluster_size=4K,data_file=d.raw", "1M"),
    ("preallocation=metadata", "100M")], ids=lambda a: a or "default")
def test_create_qcow2_byte_identical(kite, tmp_path, opts, size):
    """A new qcow2 is qemu-img's file byte for byte: it ends with the L1 table's bytes, and
    has no feature table with clusters of 4 KiB or less (where qemu-img writes none)."""
    files = []
    for tool, d in ((["qemu-img"], tmp_path / "q"), ([kite, "img"], tmp_path / "k")):
        d.mkdir()
        r = run([*tool, "create", "-q", "-f", "qcow2", *(["-o", opts] if opts else []),
                 "disk.qcow2", size], cwd=d)
        assert r.returncode == 0, r.stderr
        files.append((d / "disk.qcow2").read_bytes())
    assert len(files[1]) == len(files[0])
    assert files[1] == files[0]
