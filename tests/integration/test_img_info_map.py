"""kite img info and map on images qemu-img and qemu-io wrote: the parsed JSON must equal
qemu-img's, the human output too, and the bytes read must be the same."""
import json

import pytest

from conftest import run


def sh(*argv):
    r = run(list(argv))
    assert r.returncode == 0, " ".join(argv) + "\n" + r.stdout + r.stderr
    return r.stdout


def qcow2(path, size, opts="", writes=(), backing=None):
    args = ["qemu-img", "create", "-q", "-f", "qcow2"]
    if opts:
        args += ["-o", opts]
    if backing:
        args += ["-b", backing, "-F", "qcow2"]
    sh(*args, str(path), *([size] if size else []))
    if writes:
        cmd = ["qemu-io", "-f", "qcow2"]
        for w in writes:
            cmd += ["-c", w]
        sh(*cmd, str(path))
    return path


WRITES = ["write -P 0x11 0 64k", "write -P 0x22 1M 8k", "write -z 2M 128k",
          "write -P 0x33 3M 200k", "discard 3M 64k"]


def build(kind, d):
    """Makes an image of one kind in directory d; returns its path."""
    if kind == "raw":
        p = d / "disk.img"
        sh("qemu-img", "create", "-q", "-f", "raw", str(p), "4M")
        sh("qemu-io", "-f", "raw", "-c", "write -P 0x44 1M 64k", str(p))
        return p
    if kind == "raw-odd-size":  # not whole sectors: the last one counts whole, as zeros
        p = d / "disk.img"
        p.write_bytes(bytes(range(256)) * 4 + b"tail" * 52 + b"xx")  # 1234 bytes
        return p
    if kind.startswith("vdi-"):  # VirtualBox's format, read only in kite
        p = d / "disk.vdi"
        static = ["-o", "static=on"] if kind == "vdi-static" else []
        sh("qemu-img", "create", "-q", "-f", "vdi", *static, str(p), "5M")
        sh("qemu-io", "-f", "vdi", "-c", "write -P 7 1M 100k", "-c", "write -P 9 4M 4k", str(p))
        return p
    if kind.startswith("qcow2-"):
        opts = {
            "qcow2-default": "",
            "qcow2-v2": "compat=0.10",
            "qcow2-512": "cluster_size=512",
            "qcow2-4k-rc1": "cluster_size=4K,refcount_bits=1",
            "qcow2-2m-rc64": "cluster_size=2M,refcount_bits=64",
            "qcow2-lazy": "lazy_refcounts=on",
            "qcow2-extl2": "extended_l2=on",
            "qcow2-zstd": "compression_type=zstd",
            "qcow2-prealloc-metadata": "preallocation=metadata",
            "qcow2-prealloc-falloc": "preallocation=falloc",
        }[kind]
        return qcow2(d / "disk.qcow2", "8M", opts, WRITES)
    if kind == "compressed":
        raw = d / "src.img"
        sh("qemu-img", "create", "-q", "-f", "raw", str(raw), "4M")
        sh("qemu-io", "-f", "raw", "-c", "write -P 0x61 0 1M", "-c", "write -P 0x62 2M 64k",
           str(raw))
        p = d / "disk.qcow2"
        sh("qemu-img", "convert", "-c", "-O", "qcow2", str(raw), str(p))
        return p
    if kind == "chain":
        qcow2(d / "base.qcow2", "8M", "", ["write -P 1 0 2M", "write -P 4 6M 1M"])
        qcow2(d / "mid.qcow2", None, "", ["write -P 2 1M 2M"], backing="base.qcow2")
        return qcow2(d / "top.qcow2", None, "", ["write -P 3 1536k 64k", "write -z 6M 64k"],
                     backing="mid.qcow2")
    if kind == "snapshots":
        p = qcow2(d / "disk.qcow2", "8M", "", ["write -P 1 0 1M"])
        sh("qemu-img", "snapshot", "-c", "first", str(p))
        sh("qemu-io", "-c", "write -P 2 512k 1M", str(p))
        sh("qemu-img", "snapshot", "-c", "second", str(p))
        return p
    if kind == "bitmaps":  # persistent dirty bitmaps: listed by info, kept as they are
        p = qcow2(d / "disk.qcow2", "8M", "", ["write -P 1 0 1M"])
        sh("qemu-img", "bitmap", "--add", str(p), "b0")
        sh("qemu-img", "bitmap", "--add", "-g", "4096", str(p), "second one")
        sh("qemu-img", "bitmap", "--disable", str(p), "b0")
        sh("qemu-io", "-c", "write -P 2 512k 1M", str(p))
        return p
    if kind == "resized":
        p = qcow2(d / "disk.qcow2", "8M", "", ["write -P 9 7M 1M"])
        sh("qemu-img", "resize", str(p), "+5M")
        return p
    raise ValueError(kind)


KINDS = ["raw", "raw-odd-size", "qcow2-default", "qcow2-v2", "qcow2-512", "qcow2-4k-rc1", "qcow2-2m-rc64",
         "qcow2-lazy", "qcow2-extl2", "qcow2-zstd", "qcow2-prealloc-metadata",
         "qcow2-prealloc-falloc", "compressed", "chain", "snapshots", "bitmaps", "resized",
         "vdi-dynamic", "vdi-static"]


@pytest.fixture(scope="module", params=KINDS)
def image(request, tmp_path_factory):
    return build(request.param, tmp_path_factory.mktemp(request.param))


def test_info_json_matches_qemu(kite, image):
    for extra in ([], ["--backing-chain"]):
        r = run([kite, "img", "info", "--output=json", *extra, str(image)])
        assert r.returncode == 0, r.stderr
        assert json.loads(r.stdout) == json.loads(
            sh("qemu-img", "info", "--output=json", *extra, str(image)))


def test_info_human_matches_qemu(kite, image):
    r = run([kite, "img", "info", str(image)])
    assert r.returncode == 0, r.stderr
    assert r.stdout == sh("qemu-img", "info", str(image))


def test_map_json_matches_qemu(kite, image):
    r = run([kite, "img", "map", "--output=json", str(image)])
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout) == json.loads(sh("qemu-img", "map", "--output=json", str(image)))


def test_map_human_matches_qemu(kite, image):
    r = run([kite, "img", "map", str(image)])
    q = run(["qemu-img", "map", str(image)])
    assert r.returncode == q.returncode, r.stderr + q.stderr
    assert r.stdout == q.stdout


def test_reads_same_bytes(kite, image, tmp_path):
    mine, theirs = tmp_path / "k.raw", tmp_path / "q.raw"
    r = run([kite, "img", "convert", "-O", "raw", str(image), str(mine)])
    assert r.returncode == 0, r.stderr
    sh("qemu-img", "convert", "-O", "raw", str(image), str(theirs))
    assert mine.read_bytes() == theirs.read_bytes()


@pytest.mark.parametrize("ctype,incompat", [(0, 0x08), (1, 0x00), (7, 0x08)],
                         ids=["zlib-with-bit", "zstd-without-bit", "unknown-type"])
def test_compression_type_and_its_bit_must_agree(kite, tmp_path, ctype, incompat):
    """The header's compression type and its incompatible feature bit are refused unless they
    agree, with qemu-img's message, rather than read with the wrong decompressor."""
    img = tmp_path / "c.qcow2"
    qcow2(img, "1M", "compression_type=" + ("zstd" if ctype else "zlib"))
    with open(img, "r+b") as f:
        f.seek(72)
        flags = int.from_bytes(f.read(8), "big") & ~0x08 | incompat
        f.seek(72)
        f.write(flags.to_bytes(8, "big"))
        f.seek(104)
        f.write(bytes([ctype]))
    q = run(["qemu-img", "info", str(img)])
    k = run([kite, "img", "info", str(img)])
    assert q.returncode == k.returncode == 1
    assert k.stderr == q.stderr.replace("qemu-img: ", "kite: error: ")


def test_unsupported_features_are_named_from_the_image(kite, tmp_path):
    """Incompatible feature bits kite cannot handle are named as qemu-img names them: by the
    image's own feature table where it has a name, the rest as a hex mask."""
    img = tmp_path / "f.qcow2"
    qcow2(img, "1M")
    with open(img, "r+b") as f:
        hdr = bytearray(f.read(65536))
        off = int.from_bytes(hdr[100:104], "big")  # header length: extensions follow
        while True:
            kind, size = int.from_bytes(hdr[off:off + 4], "big"), int.from_bytes(
                hdr[off + 4:off + 8], "big")
            assert kind != 0, "no feature table"
            if kind == 0x6803F857:
                break
            off += 8 + (size + 7) // 8 * 8
        # turn the table's last entry into an incompatible feature of our own, bit 40
        last = off + 8 + size - 48
        hdr[last:last + 48] = bytes([0, 40]) + b"frobnication".ljust(46, b"\0")
        flags = int.from_bytes(hdr[72:80], "big") | (1 << 40) | (1 << 63)
        hdr[72:80] = flags.to_bytes(8, "big")
        f.seek(0)
        f.write(hdr)
    q = run(["qemu-img", "info", str(img)])
    k = run([kite, "img", "info", str(img)])
    assert q.returncode == k.returncode == 1
    assert "frobnication, Unknown incompatible feature: 8000000000000000" in q.stderr
    assert k.stderr == q.stderr.replace("qemu-img: ", "kite: error: ")


@pytest.mark.parametrize("damage", ["signature", "version", "block-size", "map-past-eof",
                                    "blocks-for-size", "truncated"])
def test_damaged_vdi_is_refused_cleanly(kite, tmp_path, damage):
    """A VDI header that cannot be trusted gives one clear error (exit 1), never a crash or a
    read from a wild offset."""
    img = tmp_path / "d.vdi"
    sh("qemu-img", "create", "-q", "-f", "vdi", str(img), "5M")
    data = bytearray(img.read_bytes())
    at = {"signature": 0x40, "version": 0x44, "block-size": 0x178, "map-past-eof": 0x154,
          "blocks-for-size": 0x180}
    if damage == "truncated":
        data = data[:0x100]
    elif damage == "map-past-eof":
        data[at[damage]:at[damage] + 4] = (1 << 30).to_bytes(4, "little")
    elif damage == "blocks-for-size":
        data[at[damage]:at[damage] + 4] = (1).to_bytes(4, "little")
    else:
        data[at[damage]] ^= 0x5a
    img.write_bytes(bytes(data))
    r = run([kite, "img", "info", "-f", "vdi", str(img)])
    assert r.returncode == 1, r.stdout
    assert r.stderr.startswith("kite: error: ") and "Sanitizer" not in r.stderr


JSON_NAME = 'json:{"driver":"qcow2","file":{"driver":"file","filename":"disk.qcow2"}}'


@pytest.mark.parametrize("argv", [
    ["info", JSON_NAME],
    ["info", "file:disk.qcow2"],
    ["info", 'json:{"file.driver":"file","file.filename":"disk.qcow2"}'],
    ["info", "--image-opts", "driver=qcow2,file.filename=disk.qcow2"],
    ["info", "--image-opts", "file.driver=file,file.filename=disk.qcow2"],
    ["map", "--output=json", "--image-opts", "driver=qcow2,file.filename=disk.qcow2"],
    ["check", "--image-opts", "driver=qcow2,file.filename=disk.qcow2"],
    ["info", "-f", "qcow2", "--image-opts", "driver=qcow2,file.filename=disk.qcow2"],
    ["info", "--image-opts", "driver=qcow2,file.filename=disk.qcow2,bogus=1"],
    ["info", 'json:{"driver":"qcow2","bogus":"1","file":{"filename":"disk.qcow2"}}'],
], ids=lambda a: " ".join(a[:2]))
def test_image_names_beyond_paths(kite, tmp_path, argv):
    """json:{...}, file: and --image-opts name the same image as a path, as in qemu-img; their
    mistakes read as qemu-img's."""
    qcow2(tmp_path / "disk.qcow2", "4M", "", ["write -P 3 0 64k"])
    q = run(["qemu-img", *argv], cwd=tmp_path)
    k = run([kite, "img", *argv], cwd=tmp_path)
    assert (k.returncode, k.stdout) == (q.returncode, q.stdout), k.stderr
    assert k.stderr == q.stderr.replace("qemu-img: ", "kite: error: ")


def test_json_backing_file_name(kite, tmp_path):
    """A backing file named json:{...} (as QEMU and libvirt write them) is followed."""
    sh("qemu-img", "create", "-q", "-f", "raw", str(tmp_path / "b.raw"), "4M")
    sh("qemu-io", "-f", "raw", "-c", "write -P 5 0 1M", str(tmp_path / "b.raw"))
    name = 'json:{"driver":"raw","file":{"driver":"file","filename":"b.raw"}}'
    r = run(["qemu-img", "create", "-q", "-f", "qcow2", "-b", name, "-F", "raw", "t.qcow2"],
            cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    for argv in (["info", "--backing-chain", "t.qcow2"], ["compare", "t.qcow2", "b.raw"],
                 ["map", "--output=json", "t.qcow2"]):
        q = run(["qemu-img", *argv], cwd=tmp_path)
        k = run([kite, "img", *argv], cwd=tmp_path)
        assert (k.returncode, k.stdout) == (q.returncode, q.stdout), k.stderr
