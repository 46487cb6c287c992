"""Encrypted images against qemu-img/qemu-io 7.2: qcow2 with encrypt.format=luks (and the legacy
aes method), -f luks, and --object secret,... on the verbs. Images qemu-img makes read in kite
byte for byte; images kite makes and writes read in qemu-img and qemu-io the same; info prints
the same (UUIDs and salts differ per image, so kite's image is shown by both tools); wrong or
missing passphrases and hostile headers give qemu-img's messages and exit codes, never a crash.
PBKDF2 runs for 10 ms per key (iter-time=10) to keep this fast."""
import json
import os
import struct
import subprocess
import time

import pytest

from conftest import run

SECRET = "secret,id=sec0,data=s3cr3t pass"
OBJ = ["--object", SECRET]
QCOW2_OPTS = "encrypt.format=luks,encrypt.key-secret=sec0,encrypt.iter-time=10"
LUKS_OPTS = "key-secret=sec0,iter-time=10"


def sh(*argv, cwd=None):
    r = run([str(a) for a in argv], cwd=cwd)
    assert r.returncode == 0, " ".join(map(str, argv)) + "\n" + r.stdout + r.stderr
    return r.stdout


def qemu_img_retry(*argv):
    """qemu-img's PBKDF2 benchmark reads a millisecond CPU clock and now and then fails with
    "Unable to get accurate CPU usage": such a create is tried again."""
    for _ in range(10):
        r = run(["qemu-img", *map(str, argv)])
        if r.returncode == 0:
            return r.stdout
        assert "Unable to get accurate CPU usage" in r.stderr, r.stderr
    pytest.fail("qemu-img kept failing its PBKDF2 benchmark")


def opts(fmt, path, secret="sec0"):
    """An --image-opts name with the key secret for format `fmt`."""
    key = "encrypt.key-secret" if fmt == "qcow2" else "key-secret"
    return f"driver={fmt},file.filename={path},{key}={secret}"


def pattern(path, size):
    """A raw file of `size` bytes: data, a hole, then data that is not cluster aligned."""
    with open(path, "wb") as f:
        f.write(os.urandom(300000))
        f.seek(2 << 20)
        f.write(os.urandom(123457))
        f.truncate(size)
    return path


def to_raw(tool, fmt, path, out, *extra):
    """The guest data of an encrypted image, as qemu-img or kite (a path) reads it."""
    cmd = [tool] if tool == "qemu-img" else [tool, "img"]
    sh(*cmd, "convert", *extra, *OBJ, "--image-opts", opts(fmt, path), "-O", "raw", out)
    return open(out, "rb").read()


def qemu_io(fmt, path, *cmds):
    return sh("qemu-io", *OBJ, "--image-opts", opts(fmt, path), *sum((["-c", c] for c in cmds), []))


def info_pair(kite, path, *extra):
    k = run([kite, "img", "info", *extra, path])
    q = run(["qemu-img", "info", *extra, path])
    assert k.returncode == q.returncode == 0, k.stderr + q.stderr
    return k.stdout, q.stdout


def msg(r, prefix):
    """stderr without the program's prefix."""
    return "".join(l[len(prefix):] if l.startswith(prefix) else l
                   for l in r.stderr.splitlines(True))


# ---- qemu-img's images read in kite ----

@pytest.mark.parametrize("extra", ["", ",encrypt.cipher-alg=aes-128,encrypt.cipher-mode=cbc,"
                                   "encrypt.ivgen-alg=essiv,encrypt.hash-alg=sha1",
                                   ",encrypt.cipher-alg=twofish-256,encrypt.ivgen-alg=plain,"
                                   "encrypt.hash-alg=sha512,cluster_size=4096"])
def test_qemu_qcow2_luks_reads_the_same(kite, tmp_path, extra):
    img, src = tmp_path / "q.qcow2", pattern(tmp_path / "src.raw", 4 << 20)
    qemu_img_retry("convert", *OBJ, "-O", "qcow2", "-o", QCOW2_OPTS + extra, src, img)
    qemu_io("qcow2", img, "write -P 0x5a 1000 70000", "write -z 3M 64k")
    want = to_raw("qemu-img", "qcow2", img, tmp_path / "q.raw")
    assert to_raw(kite, "qcow2", img, tmp_path / "k.raw") == want
    k, q = info_pair(kite, img)
    assert k == q
    k, q = info_pair(kite, img, "--output=json")
    assert json.loads(k) == json.loads(q)


def test_qemu_luks_reads_the_same(kite, tmp_path):
    img, src = tmp_path / "q.luks", pattern(tmp_path / "src.raw", 3 << 20)
    qemu_img_retry("convert", *OBJ, "-O", "luks", "-o", LUKS_OPTS, src, img)
    qemu_io("luks", img, "write -P 0x11 513 4000")
    want = to_raw("qemu-img", "luks", img, tmp_path / "q.raw")
    assert to_raw(kite, "luks", img, tmp_path / "k.raw") == want
    k, q = info_pair(kite, img)
    assert k == q
    k, q = info_pair(kite, img, "--output=json")
    assert k == q


def test_legacy_aes_qcow2(kite, tmp_path):
    """qcow's AES-CBC: qemu-img 7.2 still makes and opens it; kite reads and writes it."""
    img, src = tmp_path / "a.qcow2", pattern(tmp_path / "src.raw", 3 << 20)
    sh("qemu-img", "create", "-q", "-f", "qcow2", *OBJ, "-o",
       "encrypt.format=aes,encrypt.key-secret=sec0", img, "3M")
    qemu_io("qcow2", img, "write -P 0x5a 512 100000")
    want = to_raw("qemu-img", "qcow2", img, tmp_path / "q.raw")
    assert to_raw(kite, "qcow2", img, tmp_path / "k.raw") == want
    k, q = info_pair(kite, img, "--output=json")
    assert k == q
    out = tmp_path / "k.qcow2"
    sh(kite, "img", "convert", *OBJ, "-O", "qcow2", "-o", "encrypt.format=aes,encrypt.key-secret=sec0",
       src, out)
    assert to_raw("qemu-img", "qcow2", out, tmp_path / "back.raw") == open(src, "rb").read()


# ---- kite's images read in qemu-img and qemu-io ----

@pytest.mark.parametrize("extra", ["", ",encrypt.cipher-alg=aes-128,encrypt.cipher-mode=cbc,"
                                   "encrypt.ivgen-alg=essiv,encrypt.ivgen-hash-alg=sha256",
                                   ",encrypt.cipher-alg=serpent-256,encrypt.hash-alg=sha384,"
                                   "compat=0.10,cluster_size=16K"])
def test_kite_qcow2_luks_read_by_qemu(kite, tmp_path, extra):
    img, src = tmp_path / "k.qcow2", pattern(tmp_path / "src.raw", 4 << 20)
    r = run([kite, "img", "convert", *OBJ, "-O", "qcow2", "-o", QCOW2_OPTS + extra, src, img])
    assert r.returncode == 0, r.stderr
    assert "s3cr3t" not in r.stdout + r.stderr
    assert b"s3cr3t" not in open(img, "rb").read()
    assert to_raw("qemu-img", "qcow2", img, tmp_path / "q.raw") == open(src, "rb").read()
    check = sh("qemu-img", "check", *OBJ, "--image-opts", opts("qcow2", img))
    assert "No errors were found" in check
    k, q = info_pair(kite, img)
    assert k == q
    k, q = info_pair(kite, img, "--output=json")
    assert k == q


def test_kite_created_qcow2_layout_is_qemus(kite, tmp_path):
    """The same clusters in the same places: header, refcounts, L1, then the LUKS header."""
    k, q = tmp_path / "k.qcow2", tmp_path / "q.qcow2"
    sh(kite, "img", "create", "-q", "-f", "qcow2", *OBJ, "-o", QCOW2_OPTS, k, "64M")
    qemu_img_retry("create", "-q", "-f", "qcow2", *OBJ, "-o", QCOW2_OPTS, q, "64M")
    kb, qb = open(k, "rb").read(), open(q, "rb").read()
    assert len(kb) == len(qb)
    assert kb[:0x200] == qb[:0x200]  # the qcow2 header and its extensions
    assert kb[0x40000:0x40000 + 8] == qb[0x40000:0x40000 + 8] == b"LUKS\xba\xbe\x00\x01"


def test_kite_writes_read_by_qemu_io(kite, tmp_path):
    """kite writes into qemu-img's image (convert -n over it), qemu-io reads every byte."""
    img, src = tmp_path / "q.qcow2", pattern(tmp_path / "src.raw", 4 << 20)
    qemu_img_retry("create", "-q", "-f", "qcow2", *OBJ, "-o", QCOW2_OPTS, img, "4M")
    qemu_io("qcow2", img, "write -P 0x77 0 4M")
    sh(kite, "img", "convert", "-n", *OBJ, "-O", "qcow2", src,
       f"json:{{\"driver\":\"qcow2\",\"file\":{{\"driver\":\"file\",\"filename\":\"{img}\"}},"
       f"\"encrypt\":{{\"key-secret\":\"sec0\"}}}}")
    assert to_raw("qemu-img", "qcow2", img, tmp_path / "q.raw") == open(src, "rb").read()
    out = qemu_io("qcow2", img, "read -P 0 3M 1M")
    assert "read 1048576/1048576" in out


def test_kite_luks_read_by_qemu(kite, tmp_path):
    img, src = tmp_path / "k.luks", pattern(tmp_path / "src.raw", 3 << 20)
    sh(kite, "img", "convert", *OBJ, "-O", "luks", "-o",
       LUKS_OPTS + ",cipher-alg=aes-128,cipher-mode=cbc,ivgen-alg=essiv", src, img)
    assert to_raw("qemu-img", "luks", img, tmp_path / "q.raw") == open(src, "rb").read()
    new = tmp_path / "n.luks"
    r = run([kite, "img", "create", "-f", "luks", *OBJ, "-o", LUKS_OPTS, new, "1M"])
    assert r.returncode == 0, r.stderr
    assert r.stdout == f"Formatting '{new}', fmt=luks size=1048576 key-secret=sec0 iter-time=10\n"
    qemu_io("luks", new, "write -P 0x42 100 1000")
    assert "read 1000/1000" in qemu_io("luks", new, "read -P 0x42 100 1000")
    # what was never written decrypts to noise, the same noise in both
    data = to_raw(kite, "luks", new, tmp_path / "k.raw")
    assert data == to_raw("qemu-img", "luks", new, tmp_path / "q.raw")
    assert data[100:1100] == b"\x42" * 1000
    k, q = info_pair(kite, new)
    assert k == q


def test_formatting_line_and_help(kite, tmp_path):
    img = tmp_path / "f.qcow2"
    o = QCOW2_OPTS + ",encrypt.cipher-alg=aes-128,encrypt.cipher-mode=cbc"
    k = run([kite, "img", "create", "-f", "qcow2", *OBJ, "-o", o, img, "1M"])
    q = f"Formatting '{img}', fmt=qcow2 encrypt.format=luks encrypt.key-secret=sec0 " \
        "encrypt.cipher-alg=aes-128 encrypt.cipher-mode=cbc encrypt.iter-time=10 " \
        "cluster_size=65536 extended_l2=off compression_type=zlib size=1048576 " \
        "lazy_refcounts=off refcount_bits=16\n"
    assert k.returncode == 0 and k.stdout == q, k.stderr
    for fmt in ("luks",):
        k = run([kite, "img", "create", "-f", fmt, "-o", "help"])
        q = run(["qemu-img", "create", "-f", fmt, "-o", "help"])
        assert k.stdout == q.stdout
    k = run([kite, "img", "create", "-f", "qcow2", "-o", "help"]).stdout
    q = run(["qemu-img", "create", "-f", "qcow2", "-o", "help"]).stdout
    assert [l for l in q.splitlines() if "encrypt" in l] == \
        [l for l in k.splitlines() if "encrypt" in l]


# ---- secrets, passphrases, messages ----

def failures(kite, argv):
    k = run([kite, "img", *argv])
    q = run(["qemu-img", *argv])
    return (k.returncode, msg(k, "kite: error: ")), (q.returncode, msg(q, "qemu-img: "))


@pytest.fixture(scope="module")
def images(tmp_path_factory):
    d = tmp_path_factory.mktemp("enc")
    qemu_img_retry("create", "-q", "-f", "qcow2", *OBJ, "-o", QCOW2_OPTS, d / "e.qcow2", "1M")
    qemu_img_retry("create", "-q", "-f", "luks", *OBJ, "-o", LUKS_OPTS, d / "e.luks", "1M")
    return d


@pytest.mark.parametrize("fmt", ["qcow2", "luks"])
@pytest.mark.parametrize("objects,name", [
    (["--object", "secret,id=sec0,data=wrong"], "opts"),   # wrong passphrase
    ([], "opts"),                                          # no such secret
    (OBJ, "plain"),                                        # no key-secret option
    (["--object", "secret,id=sec0,file=/nonexistent"], "opts"),
    (["--object", "secret,id=sec0,data=x,format=hex"], "opts"),
    (["--object", "secret,id=sec0"], "opts"),
    (["--object", "secret,data=x"], "opts"),
    (["--object", "foo,id=sec0"], "opts"),
    (["--object", "secret,id=sec0,data=eA==,format=base64"], "opts"),
    (["--object", "secret,id=sec0,data=x", "--object", "secret,id=sec0,data=y"], "opts"),
])
def test_wrong_or_missing_secret(kite, images, tmp_path, fmt, objects, name):
    img = images / f"e.{fmt}"
    src = ["--image-opts", opts(fmt, img)] if name == "opts" else [str(img)]
    k, q = failures(kite, ["convert", *objects, *src, "-O", "raw", str(tmp_path / "o.raw")])
    assert k == q


def test_secret_from_file_and_base64(kite, images, tmp_path):
    pw = tmp_path / "pw"
    pw.write_text("s3cr3t pass")
    want = to_raw("qemu-img", "qcow2", images / "e.qcow2", tmp_path / "q.raw")
    for obj in (f"secret,id=sec0,file={pw}",
                "secret,id=sec0,data=czNjcjN0IHBhc3M=,format=base64"):
        r = run([kite, "img", "convert", "--object", obj, "--image-opts",
                 opts("qcow2", images / "e.qcow2"), "-O", "raw", tmp_path / "k.raw"])
        assert r.returncode == 0, r.stderr
        assert open(tmp_path / "k.raw", "rb").read() == want


def test_info_needs_no_key_and_verbs_do(kite, images):
    for verb in (["check"], ["map"], ["snapshot", "-l"], ["compare", str(images / "e.qcow2")]):
        k, q = failures(kite, [*verb, str(images / "e.qcow2")])
        assert k == q
    k, q = info_pair(kite, images / "e.qcow2", "--output=json")
    assert k == q


def test_verbs_on_encrypted_qcow2(kite, images):
    img = ["--image-opts", opts("qcow2", images / "e.qcow2")]
    for verb in (["check"], ["check", "--output=json"], ["map", "--output=json"], ["map"],
                 ["measure", "-O", "qcow2"]):
        k = run([kite, "img", *verb, *OBJ, *img])
        q = run(["qemu-img", *verb, *OBJ, *img])
        assert (k.returncode, k.stdout, msg(k, "kite: error: ")) == \
            (q.returncode, q.stdout, msg(q, "qemu-img: ")), verb


def test_create_refusals(kite, tmp_path):
    cases = [
        ["-f", "qcow2", "-o", "encrypt.format=luks"],
        ["-f", "luks"],
        ["-f", "qcow2", *OBJ, "-o", "encrypt.format=luks,encrypt.key-secret=nope"],
        ["-f", "qcow2", *OBJ, "-o", "encrypt.format=luks,encrypt.key-secret=sec0,"
         "encrypt.cipher-alg=foo"],
        ["-f", "qcow2", *OBJ, "-o", "encrypt.format=luks,encrypt.key-secret=sec0,"
         "encrypt.cipher-alg=cast5-128"],
        ["-f", "qcow2", *OBJ, "-o", "encrypt.key-secret=sec0"],
        ["-f", "qcow2", *OBJ, "-o", "encrypt.format=foo,encrypt.key-secret=sec0"],
    ]
    for c in cases:
        img = tmp_path / "x.img"
        k = run([kite, "img", "create", *c, img, "1M"])
        kexists = img.exists()
        q = run(["qemu-img", "create", *c, img, "1M"])
        assert k.returncode == q.returncode == 1, c
        assert msg(k, "kite: error: ") == msg(q, "qemu-img: "), c
        assert not kexists and not img.exists()


def test_compression_refused(kite, tmp_path):
    src = pattern(tmp_path / "src.raw", 1 << 20)
    r = run([kite, "img", "convert", "-c", *OBJ, "-O", "qcow2", "-o", QCOW2_OPTS, src,
             tmp_path / "c.qcow2"])
    assert r.returncode == 1
    assert "Compression and encryption not supported at the same time" in r.stderr


# ---- hostile headers ----

LUKS_EDITS = {
    "key slot past the end": (208 + 48 + 40, struct.pack(">I", 0x7fffffff)),
    "stripes": (208 + 44, struct.pack(">I", 0xffffffff)),
    "unknown cipher": (8, b"foo\0"),
    "absurd key size": (108, struct.pack(">I", 0xffffffff)),
    "payload in header": (104, struct.pack(">I", 0)),
    "slot in header": (208 + 40, struct.pack(">I", 5)),
    "slot state": (208, struct.pack(">I", 7)),
    "no iterations": (164, struct.pack(">I", 0)),
    "unknown hash": (72, b"sha3\0"),
    "mode format": (40, b"xts\0"),
    "unknown ivgen": (40, b"xts-foo\0"),
    "version": (6, struct.pack(">H", 2)),
    "unterminated name": (8, b"a" * 32),
}


def patched(src, dst, edits):
    data = bytearray(open(src, "rb").read())
    for off, b in edits:
        data[off:off + len(b)] = b
    open(dst, "wb").write(data)
    return dst


@pytest.mark.parametrize("edit", sorted(LUKS_EDITS))
def test_hostile_luks_header(kite, images, tmp_path, edit):
    img = patched(images / "e.luks", tmp_path / "h.luks", [LUKS_EDITS[edit]])
    k, q = failures(kite, ["convert", *OBJ, "--image-opts", opts("luks", img), "-O", "raw",
                           str(tmp_path / "o.raw")])
    assert k == q and k[0] == 1


QCOW2_EDITS = {  # the crypto header extension is the first: offset at 0x78, length at 0x80
    "unaligned header offset": [(0x78, struct.pack(">Q", 0x40200))],
    "header past the end": [(0x78, struct.pack(">Q", 1 << 40))],
    "header too short": [(0x80, struct.pack(">Q", 100))],
    "extension size": [(0x74, struct.pack(">I", 8))],
    "unknown method": [(32, struct.pack(">I", 3))],
    "aes with extension": [(32, struct.pack(">I", 1))],
    "no extension": [(0x70, struct.pack(">I", 0x12345678))],
    "unencrypted with extension": [(32, struct.pack(">I", 0))],
}


@pytest.mark.parametrize("edit", sorted(QCOW2_EDITS))
def test_hostile_qcow2_crypto_header(kite, images, tmp_path, edit):
    img = patched(images / "e.qcow2", tmp_path / "h.qcow2", QCOW2_EDITS[edit])
    k, q = failures(kite, ["convert", *OBJ, "--image-opts", opts("qcow2", img), "-O", "raw",
                           str(tmp_path / "o.raw")])
    assert k == q and k[0] == 1


def test_absurd_iterations_refused_fast(kite, images, tmp_path):
    """QEMU would run 2^32 PBKDF2 iterations (minutes); kite refuses at once."""
    for off in (208 + 4, 164):  # slot 0's iterations, the master key digest's
        img = patched(images / "e.luks", tmp_path / "i.luks", [(off, struct.pack(">I", 0xffffffff))])
        t = time.monotonic()
        r = run([kite, "img", "convert", *OBJ, "--image-opts", opts("luks", img), "-O", "raw",
                 tmp_path / "o.raw"])
        assert r.returncode == 1 and "PBKDF2 iterations" in r.stderr
        assert time.monotonic() - t < 30


_QEMU_MEASURE = {}  # qemu-img's answers, once for both kite builds (its PBKDF benchmark is slow)


@pytest.mark.parametrize("opts,size", [
    ("encrypt.format=luks,encrypt.key-secret=s,encrypt.iter-time=10", "1G"),
    ("encrypt.format=luks,encrypt.key-secret=s,encrypt.iter-time=10,encrypt.cipher-alg=aes-128,"
     "preallocation=full,cluster_size=4K", None),
    ("encrypt.format=luks", "1G"),
    ("encrypt.format=luks,encrypt.key-secret=s,encrypt.cipher-alg=foo", "1G"),
    ("encrypt.format=aes,encrypt.key-secret=s", "1G"),
], ids=lambda a: a or "from-image")
def test_measure_counts_the_luks_header(kite, tmp_path_factory, opts, size):
    """measure -O qcow2 with LUKS encryption counts its header's clusters as qemu-img 7.2 does,
    and asks for the secret in its words."""
    src = tmp_path_factory.getbasetemp() / "measure-src.raw"
    if not src.exists():
        r = run(["qemu-img", "create", "-q", "-f", "raw", str(src), "8M"])
        assert r.returncode == 0, r.stderr
    argv = ["measure", "--object", "secret,id=s,data=pw", "-O", "qcow2", "-o", opts,
            *(["--size", size] if size else [str(src)])]
    key = (opts, size)
    if key not in _QEMU_MEASURE:
        _QEMU_MEASURE[key] = run(["qemu-img", *argv])
    q = _QEMU_MEASURE[key]
    k = run([kite, "img", *argv])
    assert (k.returncode, k.stdout) == (q.returncode, q.stdout), (k.stderr, q.stderr)
    assert k.stderr == q.stderr.replace("qemu-img: ", "kite: error: ")
