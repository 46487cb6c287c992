"""qcow2 images with an external data file (data_file, data_file_raw) against qemu-img/qemu-io
7.2: images qemu-img makes read in kite as in qemu-img (info, map, check, compare, convert);
images kite creates and writes pass qemu-img check and read the same in qemu-img and qemu-io;
the verbs qemu-img refuses with a data file are refused with its words; damaged headers and a
missing data file give qemu-img's message and exit code, never a crash."""
import hashlib
import json
import os
import struct
import subprocess

import pytest

from conftest import run

QEMU_PREFIX = "qemu-img: "
KITE_PREFIX = "kite: error: "
MiB = 1 << 20
EXT_DATA_FILE = 0x44415441


def sh(*argv):
    r = run([str(a) for a in argv])
    assert r.returncode == 0, " ".join(map(str, argv)) + "\n" + r.stdout + r.stderr
    return r.stdout


def errors(r, prefix):
    """stderr with the program's prefix taken off each line that has it."""
    return "".join(line[len(prefix):] if line.startswith(prefix) else line
                   for line in r.stderr.splitlines(True))


def digest(path):
    return hashlib.sha256(open(path, "rb").read()).hexdigest()


def no_crash(r):
    for bad in ("AddressSanitizer", "runtime error:", "LeakSanitizer"):
        assert bad not in r.stderr, r.stderr


def same(kite, *argv):
    """Runs `kite img ARGV` and `qemu-img ARGV`: same exit code, stdout and error text."""
    argv = [str(a) for a in argv]
    k = run([kite, "img", *argv])
    q = run(["qemu-img", *argv])
    no_crash(k)
    assert k.returncode == q.returncode, (argv, k.stderr, q.stderr)
    assert k.stdout == q.stdout, argv
    assert errors(k, KITE_PREFIX) == errors(q, QEMU_PREFIX), argv
    return k


def pattern(path, size=MiB):
    """Data in cluster 0 (host offset 0 in the data file), a hole, then unaligned data."""
    with open(path, "wb") as f:
        f.write(os.urandom(100000))
        f.seek(320 << 10)
        f.write(os.urandom(70000))
        f.truncate(size)
    return path


@pytest.fixture
def cwd(tmp_path):
    os.chdir(tmp_path)
    return tmp_path


def qemu_image(name, data, raw="off", size="1M"):
    sh("qemu-img", "create", "-q", "-f", "qcow2", "-o",
       f"data_file={data},data_file_raw={raw}", name, size)
    sh("qemu-io", "-f", "qcow2", "-c", "write -P 0x5a 0 64k", "-c", "write -P 0xa5 300k 10k",
       "-c", "write -z 640k 64k", name)
    return name


# ---- qemu-img's images read in kite ----

@pytest.mark.parametrize("raw", ["off", "on"])
def test_read_qemu_image(kite, cwd, raw):
    qemu_image("a.qcow2", "a.data", raw)
    for argv in (["info", "a.qcow2"], ["info", "--output=json", "a.qcow2"],
                 ["map", "a.qcow2"], ["map", "--output=json", "a.qcow2"],
                 ["check", "a.qcow2"], ["check", "--output=json", "a.qcow2"],
                 ["compare", "a.qcow2", "a.qcow2"]):
        same(kite, *argv)
    info = json.loads(sh(kite, "img", "info", "--output=json", "a.qcow2"))
    assert info["format-specific"]["data"]["data-file"] == "a.data"
    assert info["format-specific"]["data"]["data-file-raw"] == (raw == "on")
    sh(kite, "img", "convert", "-O", "raw", "a.qcow2", "k.raw")
    sh("qemu-img", "convert", "-O", "raw", "a.qcow2", "q.raw")
    assert digest("k.raw") == digest("q.raw")
    same(kite, "compare", "a.qcow2", "q.raw")


def test_data_file_name_from_current_directory(kite, cwd):
    """qemu-img 7.2 opens a relative data file name from the current directory (unlike a
    backing file's name), where create makes it: kite does the same."""
    os.mkdir("sub")
    os.chdir("sub")
    qemu_image("a.qcow2", "a.data")
    os.chdir("..")
    same(kite, "map", "sub/a.qcow2")  # ./a.data is missing
    pattern("a.data")
    same(kite, "map", "sub/a.qcow2")
    same(kite, "compare", "sub/a.qcow2", "sub/a.data")
    sh(kite, "img", "convert", "-O", "raw", "sub/a.qcow2", "k.raw")
    sh("qemu-img", "convert", "-O", "raw", "sub/a.qcow2", "q.raw")
    assert digest("k.raw") == digest("q.raw")
    os.chdir("sub")
    same(kite, "compare", "a.qcow2", "a.data")


def test_convert_into_new_data_file_image(kite, cwd):
    pattern("src.raw")
    for tool, tag in ((kite, "k"), ("qemu-img", "q")):
        cmd = [tool, "img"] if tool == kite else [tool]
        sh(*cmd, "convert", "-f", "raw", "-O", "qcow2", "-o", f"data_file={tag}.data",
           "src.raw", f"{tag}.qcow2")
    sh("qemu-img", "check", "k.qcow2")
    sh("qemu-img", "compare", "-f", "raw", "src.raw", "k.qcow2")
    assert sh("qemu-img", "map", "--output=json", "k.qcow2") == \
        sh("qemu-img", "map", "--output=json", "q.qcow2")


# ---- images kite creates and writes ----

CREATE_OPTS = [
    "data_file=D.raw",
    "data_file=D.raw,data_file_raw=on",
    "data_file=D.raw,data_file_raw=off",
    "data_file=D.raw,preallocation=metadata",
    "data_file=D.raw,preallocation=falloc",
    "data_file=D.raw,preallocation=full",
    "data_file=D.raw,data_file_raw=on,preallocation=full",
    "data_file=D.raw,cluster_size=8192,extended_l2=off",
]


@pytest.mark.parametrize("opts", CREATE_OPTS)
def test_create(kite, cwd, opts):
    k = run([kite, "img", "create", "-f", "qcow2", "-o", opts, "k.qcow2", "1M"])
    assert k.returncode == 0, k.stderr
    os.rename("D.raw", "k.data")
    q = run(["qemu-img", "create", "-f", "qcow2", "-o", opts, "q.qcow2", "1M"])
    assert q.returncode == 0, q.stderr
    assert k.stdout == q.stdout.replace("q.qcow2", "k.qcow2")
    # the header cluster (data file name, bits, feature table) byte for byte
    cs = 8192 if "cluster_size=8192" in opts else 65536
    assert open("k.qcow2", "rb").read(cs) == open("q.qcow2", "rb").read(cs)
    assert os.path.getsize("k.data") == os.path.getsize("D.raw")
    # preallocated (falloc, full) or sparse, as qemu-img made it
    full = [os.stat(f).st_blocks * 512 >= MiB for f in ("k.data", "D.raw")]
    assert full[0] == full[1]
    assert digest("k.data") == digest("D.raw")
    # kite's image as qemu-img sees it: the name kite stored is D.raw, so look at it there
    os.rename("D.raw", "q.data")
    os.rename("k.data", "D.raw")
    sh("qemu-img", "check", "k.qcow2")
    kmap = sh("qemu-img", "map", "--output=json", "k.qcow2")
    os.rename("D.raw", "k.data")
    os.rename("q.data", "D.raw")
    assert kmap == sh("qemu-img", "map", "--output=json", "q.qcow2")


@pytest.mark.parametrize("opts", ["data_file_raw=on", "data_file=D.raw,compat=0.10"])
def test_create_refused(kite, cwd, opts):
    k = run([kite, "img", "create", "-f", "qcow2", "-o", opts, "x.qcow2", "1M"])
    q = run(["qemu-img", "create", "-f", "qcow2", "-o", opts, "x.qcow2", "1M"])
    assert k.returncode == q.returncode == 1
    assert k.stdout == q.stdout
    assert errors(k, KITE_PREFIX) == errors(q, QEMU_PREFIX)


@pytest.mark.parametrize("raw", ["off", "on"])
@pytest.mark.parametrize("prealloc", ["off", "metadata"])
def test_write_through_kite(kite, cwd, raw, prealloc):
    """kite writes (convert -n) into its own image; qemu-img and qemu-io read them back."""
    pattern("src.raw")
    opts = f"data_file=k.data,data_file_raw={raw},preallocation={prealloc}"
    sh(kite, "img", "create", "-q", "-f", "qcow2", "-o", opts, "k.qcow2", "1M")
    sh("qemu-img", "create", "-q", "-f", "qcow2", "-o", opts.replace("k.data", "q.data"),
       "q.qcow2", "1M")
    sh(kite, "img", "convert", "-n", "-f", "raw", "-O", "qcow2", "src.raw", "k.qcow2")
    sh("qemu-img", "convert", "-n", "-f", "raw", "-O", "qcow2", "src.raw", "q.qcow2")
    sh("qemu-img", "check", "k.qcow2")
    sh("qemu-img", "compare", "-f", "raw", "src.raw", "k.qcow2")
    sh("qemu-io", "-f", "qcow2", "-c", "read -P 0 100000 100000", "k.qcow2")
    if raw == "on":  # the data file is the disk
        assert digest("k.data") == digest("src.raw")
    assert sh(kite, "img", "map", "--output=json", "k.qcow2") == \
        sh("qemu-img", "map", "--output=json", "q.qcow2")
    same(kite, "check", "k.qcow2")
    # and back again: what qemu-io writes, kite reads
    sh("qemu-io", "-f", "qcow2", "-c", "write -P 0x33 900k 20k", "k.qcow2")
    sh(kite, "img", "convert", "-O", "raw", "k.qcow2", "back.raw")
    sh("qemu-img", "convert", "-O", "raw", "k.qcow2", "qback.raw")
    assert digest("back.raw") == digest("qback.raw")


def test_resize(kite, cwd):
    qemu_image("k.qcow2", "k.data")
    qemu_image("q.qcow2", "q.data")
    sh(kite, "img", "resize", "k.qcow2", "3M")
    sh("qemu-img", "resize", "q.qcow2", "3M")
    assert os.path.getsize("k.data") == os.path.getsize("q.data") == 3 * MiB
    sh("qemu-img", "check", "k.qcow2")
    sh("qemu-io", "-f", "qcow2", "-c", "write -P 0x77 2M 64k", "k.qcow2")
    sh(kite, "img", "convert", "-O", "raw", "k.qcow2", "k.raw")
    sh("qemu-img", "convert", "-O", "raw", "k.qcow2", "q.raw")
    assert digest("k.raw") == digest("q.raw")
    sh(kite, "img", "resize", "--shrink", "k.qcow2", "512K")
    sh("qemu-img", "resize", "--shrink", "q.qcow2", "512K")
    assert os.path.getsize("k.data") == os.path.getsize("q.data") == 512 << 10
    sh("qemu-img", "check", "k.qcow2")
    assert sh("qemu-img", "map", "--output=json", "k.qcow2") == \
        sh("qemu-img", "map", "--output=json", "q.qcow2")


# ---- what qemu-img refuses with a data file ----

def test_refusals(kite, cwd):
    qemu_image("a.qcow2", "a.data")
    before = digest("a.qcow2"), digest("a.data")
    same(kite, "snapshot", "-c", "s1", "a.qcow2")
    same(kite, "snapshot", "-l", "a.qcow2")
    assert (digest("a.qcow2"), digest("a.data")) == before
    sh("qemu-img", "create", "-q", "-f", "qcow2", "-o", "data_file=t.data", "t.qcow2", "1M")
    same(kite, "convert", "-n", "-c", "-O", "qcow2", "a.qcow2", "t.qcow2")
    for tool in (kite, "qemu-img"):
        cmd = [tool, "img"] if tool == kite else [tool]
        r = run(cmd + ["convert", "-c", "-O", "qcow2", "-o", "data_file=c.data", "a.qcow2",
                       "c.qcow2"])
        no_crash(r)
        assert r.returncode == 1
        assert errors(r, KITE_PREFIX if tool == kite else QEMU_PREFIX) == \
            "error while writing at byte 0: Operation not supported\n"


def test_amend(kite, cwd):
    qemu_image("k.qcow2", "a.data", raw="on")
    qemu_image("q.qcow2", "a.data", raw="on")
    sh(kite, "img", "amend", "-o", "data_file=b.data,data_file_raw=off", "k.qcow2")
    sh("qemu-img", "amend", "-o", "data_file=b.data,data_file_raw=off", "q.qcow2")
    assert open("k.qcow2", "rb").read(65536) == open("q.qcow2", "rb").read(65536)
    same(kite, "info", "k.qcow2")
    os.rename("a.data", "b.data")
    same(kite, "amend", "-o", "data_file_raw=on", "k.qcow2")
    sh("qemu-img", "create", "-q", "-f", "qcow2", "plain.qcow2", "1M")
    same(kite, "amend", "-o", "data_file=x.data", "plain.qcow2")
    same(kite, "amend", "-o", "data_file_raw=on", "plain.qcow2")


# ---- damaged images: qemu-img's message, no crash ----

def extensions(buf):
    off = struct.unpack(">I", buf[100:104])[0]
    while True:
        t, n = struct.unpack(">II", buf[off:off + 8])
        yield off, t, n
        if t == 0:
            return
        off += 8 + ((n + 7) & ~7)


def damage(name, how):
    sh("qemu-img", "create", "-q", "-f", "qcow2", "-o", "data_file=d.raw", name, "1M")
    b = bytearray(open(name, "rb").read())
    off = next(o for o, t, _ in extensions(b) if t == EXT_DATA_FILE)
    if how == "no-name":  # the bit without the extension
        struct.pack_into(">I", b, off, 0x12345678)
    elif how == "name-too-long":
        struct.pack_into(">I", b, off + 4, 0x10000)
    elif how == "empty-name":
        b[off + 8] = 0
    elif how == "no-bit":
        struct.pack_into(">Q", b, 72, struct.unpack(">Q", b[72:80])[0] & ~4)
    elif how == "raw-without-bit":
        struct.pack_into(">Q", b, 72, struct.unpack(">Q", b[72:80])[0] & ~4)
        struct.pack_into(">Q", b, 88, 2)
    open(name, "wb").write(b)


@pytest.mark.parametrize("how", ["no-name", "name-too-long", "empty-name", "no-bit",
                                 "raw-without-bit", "missing"])
def test_damaged(kite, cwd, how):
    if how == "missing":
        sh("qemu-img", "create", "-q", "-f", "qcow2", "-o", "data_file=gone.raw", "x.qcow2",
           "1M")
        os.unlink("gone.raw")
    else:
        damage("x.qcow2", how)
    before = digest("x.qcow2")
    for argv in (["info", "x.qcow2"], ["info", "--output=json", "x.qcow2"], ["map", "x.qcow2"],
                 ["check", "x.qcow2"], ["compare", "x.qcow2", "x.qcow2"],
                 ["convert", "-O", "raw", "x.qcow2", "out.raw"],
                 ["resize", "x.qcow2", "2M"]):
        if argv[0] == "resize":
            shutil_copy("x.qcow2", "y.qcow2")
            argv = ["resize", "y.qcow2", "2M"]
        k = same(kite, *argv)
        if k.returncode:
            assert k.stderr.startswith(KITE_PREFIX), k.stderr
    assert digest("x.qcow2") == before


def shutil_copy(a, b):
    with open(a, "rb") as f, open(b, "wb") as g:
        g.write(f.read())


def test_compressed_cluster_in_data_file_image(kite, cwd):
    """A compressed L2 entry cannot point into a data file: an error, no crash."""
    sh("qemu-img", "create", "-q", "-f", "qcow2", "-o", "data_file=d.raw", "x.qcow2", "1M")
    sh("qemu-io", "-f", "qcow2", "-c", "write -P 1 0 64k", "x.qcow2")
    b = bytearray(open("x.qcow2", "rb").read())
    l1 = struct.unpack(">Q", b[40:48])[0]
    l2 = struct.unpack(">Q", b[l1:l1 + 8])[0] & 0x00fffffffffffe00
    struct.pack_into(">Q", b, l2, (1 << 62) | 0x30000)
    open("x.qcow2", "wb").write(b)
    r = run([kite, "img", "convert", "-O", "raw", "x.qcow2", "out.raw"])
    no_crash(r)
    assert r.returncode == 1
    assert r.stderr.startswith(KITE_PREFIX)


# ---- locks: the data file is locked with the image ----

class Holder:
    """qemu-io with an image open read-write, as a running VM holds its disk."""

    def __init__(self, path, fmt):
        self.proc = subprocess.Popen(["qemu-io", "-f", fmt, path], stdin=subprocess.PIPE,
                                     stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        self.proc.stdin.write("help\n")
        self.proc.stdin.flush()
        assert self.proc.stdout.readline(), self.proc.stderr.read()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.proc.stdin.close()
        self.proc.wait(timeout=30)


def test_locks(kite, cwd):
    qemu_image("a.qcow2", "a.data")
    pattern("src.raw")
    before = digest("a.qcow2"), digest("a.data")
    with Holder("a.qcow2", "qcow2"):
        same(kite, "convert", "-n", "-f", "raw", "-O", "qcow2", "src.raw", "a.qcow2")
        same(kite, "map", "a.qcow2")
        same(kite, "map", "-U", "a.qcow2")
    # a process holding the data file itself: kite writes nothing into it (qemu-img 7.2's
    # data child shares writes; kite keeps its rule that nothing writes a file in use)
    with Holder("a.data", "raw"):
        r = run([kite, "img", "convert", "-n", "-f", "raw", "-O", "qcow2", "src.raw",
                 "a.qcow2"])
        assert r.returncode == 1
        assert errors(r, KITE_PREFIX).endswith("Is another process using the image [a.data]?\n")
        same(kite, "info", "a.qcow2")
        same(kite, "map", "-U", "a.qcow2")
    assert (digest("a.qcow2"), digest("a.data")) == before


@pytest.mark.parametrize("argv", [
    ["-o", "data_file=x.raw", "SRC"],
    ["-o", "data_file=x.raw,data_file_raw=on,preallocation=full", "SRC"],
    ["-o", "data_file=x.raw,preallocation=falloc", "--size", "1G"],
    ["-o", "data_file=x.raw,preallocation=metadata,cluster_size=4K", "--size", "1G"],
    ["-o", "preallocation=full", "--output=json", "--size", "3G"],
    ["-o", "data_file=x.raw", "-O", "raw", "SRC"],
], ids=lambda a: " ".join(a))
def test_measure_with_data_file_and_preallocation(kite, tmp_path, argv):
    """measure -o data_file=... gives qemu-img 7.2's sizes (the data file does not change
    them; full/falloc preallocation makes all of it required), and a format without data
    files is refused with its words."""
    src = tmp_path / "src.raw"
    sh("qemu-img", "create", "-q", "-f", "raw", src, "64M")
    sh("qemu-io", "-f", "raw", "-c", "write -P 3 0 1M", src)
    argv = [str(src) if a == "SRC" else a for a in argv]
    if "-O" not in argv:
        argv = ["-O", "qcow2", *argv]
    q = run(["qemu-img", "measure", *argv], cwd=tmp_path)
    k = run([kite, "img", "measure", *argv], cwd=tmp_path)
    assert (k.returncode, k.stdout) == (q.returncode, q.stdout), k.stderr
    assert errors(k, KITE_PREFIX) == errors(q, QEMU_PREFIX)


@pytest.mark.parametrize("verb", ["create", "convert"])
def test_unknown_option_refused_in_qemu_img_words(kite, tmp_path, verb):
    src = tmp_path / "src.raw"
    sh("qemu-img", "create", "-q", "-f", "raw", src, "1M")
    argv = {"create": ["create", "-f", "raw", "-o", "data_file=d.raw", "new.img", "1M"],
            "convert": ["convert", "-O", "qcow2", "-o", "bogus=1", str(src), "new.img"]}[verb]
    q = run(["qemu-img", *argv], cwd=tmp_path)
    k = run([kite, "img", *argv], cwd=tmp_path)
    assert k.returncode == q.returncode == 1
    assert errors(k, KITE_PREFIX) == errors(q, QEMU_PREFIX)
    assert not (tmp_path / "new.img").exists()
