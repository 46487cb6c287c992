"""kite img on Hyper-V / Virtual PC images qemu-img wrote (vpc: VHD, vhdx), read only: info,
map, the bytes read and compare must be qemu-img's, and a damaged or hostile header gives
qemu-img's error after "kite: error:" (exit 1), never a crash under ASan."""
import json

import pytest

from conftest import BUILDS, run

WRITES = ["write -P 7 1M 100k", "write -P 9 4M 4k", "write -P 5 9M 64k"]


def sh(*argv):
    r = run(list(argv))
    assert r.returncode == 0, " ".join(argv) + "\n" + r.stdout + r.stderr
    return r.stdout


def build(kind, d):
    """Makes an image of one kind in directory d; returns (path, format option for -f)."""
    fmt, _, sub = kind.partition("-")
    if sub == "converted":  # qemu-img convert's own layout, from a raw source
        src = d / "src.raw"
        sh("qemu-img", "create", "-q", "-f", "raw", str(src), "12M")
        sh("qemu-io", "-f", "raw", *sum((["-c", w] for w in WRITES), []), str(src))
        p = d / ("disk." + fmt)
        sh("qemu-img", "convert", "-O", fmt, str(src), str(p))
    else:
        opts = {"vpc-dynamic": [], "vpc-fixed": ["-o", "subformat=fixed"],
                "vpc-forcesize": ["-o", "force_size=on"], "vhdx-dynamic": [],
                "vhdx-fixed": ["-o", "subformat=fixed"],
                "vhdx-small": ["-o", "block_size=1M,log_size=1M"],
                "vhdx-16m": ["-o", "block_size=16M,block_state_zero=off"]}[kind]
        p = d / ("disk." + fmt)
        sh("qemu-img", "create", "-q", "-f", fmt, *opts, str(p), "12M")
        sh("qemu-io", "-f", fmt, *sum((["-c", w] for w in WRITES), []), str(p))
    # a fixed VHD has no header at its start: qemu-img probes it as raw, so name the format
    return p, (["-f", fmt] if kind == "vpc-fixed" else [])


KINDS = ["vpc-dynamic", "vpc-fixed", "vpc-forcesize", "vpc-converted", "vhdx-dynamic",
         "vhdx-fixed", "vhdx-small", "vhdx-converted"]


VIEWS = (["info", "--output=json"], ["info"], ["map", "--output=json"], ["map"])


@pytest.fixture(scope="module", params=KINDS)
def image(request, tmp_path_factory):
    """The image, its -f option, qemu-img's outputs for VIEWS and its raw conversion."""
    d = tmp_path_factory.mktemp(request.param)
    img, f = build(request.param, d)
    views = [run(["qemu-img", *argv, *f, str(img)]) for argv in VIEWS]
    raw = d / "q.raw"
    sh("qemu-img", "convert", *f, "-O", "raw", str(img), str(raw))
    return img, f, views, raw


def test_reads_as_qemu_img_does(kite, image, tmp_path):
    img, f, views, theirs = image
    for argv, q in zip(VIEWS, views):
        k = run([kite, "img", *argv, *f, str(img)])
        assert (k.returncode, k.stdout) == (q.returncode, q.stdout), argv + [k.stderr]
    mine = tmp_path / "k.raw"
    r = run([kite, "img", "convert", *f, "-O", "raw", str(img), str(mine)])
    assert r.returncode == 0, r.stderr
    assert mine.read_bytes() == theirs.read_bytes()
    # compare against the raw copy, then against one byte changed in the last write
    r = run([kite, "img", "compare", *f, "-F", "raw", str(img), str(theirs)])
    assert (r.returncode, r.stdout) == (0, "Images are identical.\n"), r.stderr
    changed = tmp_path / "changed.raw"
    data = bytearray(theirs.read_bytes())
    data[9 * 2**20 + 4097] ^= 1
    changed.write_bytes(bytes(data))
    q = run(["qemu-img", "compare", *f, "-F", "raw", str(img), str(changed)])
    k = run([kite, "img", "compare", *f, "-F", "raw", str(img), str(changed)])
    assert (k.returncode, k.stdout) == (q.returncode, q.stdout) == (1, q.stdout), k.stderr


@pytest.fixture(scope="session")
def san_kite():
    """Damaged images go to the ASan+UBSan build only: what matters there is that nothing
    is read out of bounds; the messages are the same in both builds."""
    return BUILDS["asan"]


def vpc_fix_checksum(data, at):
    """Recomputes the checksum of the footer at `at` (one's complement of the byte sum)."""
    data[at + 64:at + 68] = bytes(4)
    data[at + 64:at + 68] = (~sum(data[at:at + 512]) & 0xffffffff).to_bytes(4, "big")


def damage_vpc(data, damage):
    be = lambda v, n: v.to_bytes(n, "big")  # noqa: E731
    if damage == "footer-checksum":
        data[24] ^= 0x40  # the timestamp, checksum left as it was
    elif damage == "huge-size":  # a Hyper-V footer whose size is 2^50 bytes
        data[28:32] = b"win "
        data[48:56] = be(1 << 50, 8)
    elif damage == "bat-past-eof":
        data[1536:1540] = be(0x00ffffff, 4)
    elif damage == "bat-offset-huge":
        data[512 + 16:512 + 24] = be(1 << 62, 8)
    elif damage == "table-entries-huge":
        data[512 + 28:512 + 32] = be(0x7fffffff, 4)
    elif damage == "table-too-small":
        data[512 + 28:512 + 32] = be(1, 4)
    elif damage == "block-size":
        data[512 + 32:512 + 36] = be(3 * 512, 4)
    elif damage == "dynamic-magic":
        data[512] ^= 1
    elif damage == "truncated":
        del data[len(data) // 2:]
    elif damage == "no-footer":
        data[0] ^= 1
        data[-512] ^= 1
    elif damage == "tiny":
        del data[100:]
    if damage in ("huge-size",):
        vpc_fix_checksum(data, 0)


VPC_DAMAGE = ["footer-checksum", "huge-size", "bat-past-eof", "bat-offset-huge",
              "table-entries-huge", "table-too-small", "block-size", "dynamic-magic",
              "truncated", "no-footer", "tiny"]


@pytest.fixture(scope="module")
def pristine_vpc(tmp_path_factory):
    img = tmp_path_factory.mktemp("vpc") / "pristine.vhd"
    sh("qemu-img", "create", "-q", "-f", "vpc", str(img), "12M")
    sh("qemu-io", "-f", "vpc", "-c", "write -P 7 0 64k", "-c", "write -P 8 4M 64k", str(img))
    return img.read_bytes()


def refused_alike(kite, img, fmt):
    q = run(["qemu-img", "info", "-f", fmt, str(img)])
    k = run([kite, "img", "info", "-f", fmt, str(img)])
    assert q.returncode == k.returncode == 1, (q.stderr, k.stdout)
    assert k.stderr == q.stderr.replace("qemu-img: ", "kite: error: ")


@pytest.mark.parametrize("damage", VPC_DAMAGE)
def test_damaged_vpc_is_refused_as_qemu_img_does(san_kite, tmp_path, pristine_vpc, damage):
    data = bytearray(pristine_vpc)
    damage_vpc(data, damage)
    img = tmp_path / "d.vhd"
    img.write_bytes(bytes(data))
    refused_alike(san_kite, img, "vpc")


def test_vhdx_blocks_past_a_sector_bitmap_entry(kite, tmp_path):
    """With 256 MiB blocks, a sector-bitmap entry follows every 16 payload entries of the BAT:
    blocks past the first chunk are found past it (read with dd, not a 5 GiB convert)."""
    img = tmp_path / "big.vhdx"
    sh("qemu-img", "create", "-q", "-f", "vhdx", "-o", "block_size=256M", str(img), "5G")
    sh("qemu-io", "-f", "vhdx", "-c", "write -P 3 4100M 64k", "-c", "write -P 4 255M 1M",
       str(img))
    for skip in ("4100", "255"):
        mine, theirs = tmp_path / "k.raw", tmp_path / "q.raw"
        argv = ["dd", "-O", "raw", "bs=1M", "count=1", "skip=" + skip, "if=" + str(img)]
        sh("qemu-img", *argv, "of=" + str(theirs))
        r = run([kite, "img", *argv, "of=" + str(mine)])
        assert r.returncode == 0, r.stderr
        assert mine.read_bytes() == theirs.read_bytes() != bytes(2**20)


def crc32c(data):
    crc = 0xffffffff
    for byte in data:
        crc ^= byte
        for _ in range(8):
            crc = (crc >> 1) ^ (0x82F63B78 if crc & 1 else 0)
    return crc ^ 0xffffffff


def vhdx_fix_header(data, at):
    data[at + 4:at + 8] = bytes(4)
    data[at + 4:at + 8] = crc32c(bytes(data[at:at + 4096])).to_bytes(4, "little")


def damage_vhdx(data, damage):
    le = lambda v, n: v.to_bytes(n, "little")  # noqa: E731
    bat, meta = 2 * 2**20, 3 * 2**20  # where qemu-img create puts them
    entry = int.from_bytes(data[bat:bat + 8], "little")
    if damage == "signature":
        data[0] ^= 1
    elif damage == "both-headers":
        data[64 * 1024 + 8] ^= 1
        data[128 * 1024 + 8] ^= 1
    elif damage == "region-table":
        data[192 * 1024 + 40] ^= 1
    elif damage == "metadata-signature":
        data[meta] ^= 1
    elif damage == "block-size":
        data[meta + 65536:meta + 65540] = le(3, 4)
    elif damage == "sector-size":
        data[meta + 65568:meta + 65572] = le(1024, 4)
    elif damage == "has-parent":
        data[meta + 65540] |= 2
    elif damage == "huge-size":
        data[meta + 65544:meta + 65552] = le(1 << 62, 8)
    elif damage == "bat-past-eof":
        data[bat:bat + 8] = le(1 << 40 | 6, 8)
    elif damage == "bat-end-past-eof":
        data[bat:bat + 8] = le((len(data) - 2**20) | 6, 8)
    elif damage == "bat-on-metadata":
        data[bat:bat + 8] = le(meta | 6, 8)
    elif damage == "pending-log":  # a writer stopped before its log entry was replayed
        guid = data[2**20 + 32:2**20 + 48]
        assert data[2**20:2**20 + 4] == b"loge" and entry & 7 == 6
        for at in (64 * 1024, 128 * 1024):
            data[at + 48:at + 64] = guid
            vhdx_fix_header(data, at)


VHDX_DAMAGE = ["signature", "both-headers", "region-table", "metadata-signature", "block-size",
               "sector-size", "has-parent", "huge-size", "bat-past-eof", "bat-end-past-eof",
               "bat-on-metadata", "pending-log"]


@pytest.fixture(scope="module")
def pristine_vhdx(tmp_path_factory):
    img = tmp_path_factory.mktemp("vhdx") / "pristine.vhdx"
    sh("qemu-img", "create", "-q", "-f", "vhdx", str(img), "12M")
    sh("qemu-io", "-f", "vhdx", "-c", "write -P 7 0 64k", str(img))
    return img.read_bytes()


@pytest.mark.parametrize("damage", VHDX_DAMAGE)
def test_damaged_vhdx_is_refused_as_qemu_img_does(san_kite, tmp_path, pristine_vhdx, damage):
    data = bytearray(pristine_vhdx)
    damage_vhdx(data, damage)
    img = tmp_path / "d.vhdx"
    img.write_bytes(bytes(data))
    refused_alike(san_kite, img, "vhdx")


@pytest.mark.parametrize("damaged", [False, True])
def test_check_counts_bad_vhdx_blocks_as_qemu_img(kite, tmp_path, pristine_vhdx, damaged):
    """qemu-img check opens a VHDX whose BAT is damaged and counts each bad entry (exit 2); a
    clean one has no errors; a VHD cannot be checked (exit 63)."""
    data = bytearray(pristine_vhdx)
    if damaged:  # block 0 past the end of the file, block 1 over the metadata
        bat = 2 * 2**20
        data[bat:bat + 16] = (1 << 40 | 6).to_bytes(8, "little") + (
            3 * 2**20 | 6).to_bytes(8, "little")
    img = tmp_path / "d.vhdx"
    img.write_bytes(bytes(data))
    vhd = tmp_path / "d.vhd"
    sh("qemu-img", "create", "-q", "-f", "vpc", str(vhd), "1M")
    for argv in (["check", str(img)], ["check", "--output=json", str(img)],
                 ["check", "-r", "all", str(img)], ["check", str(vhd)]):
        q = run(["qemu-img", *argv])
        k = run([kite, "img", *argv])
        assert (k.returncode, k.stdout) == (q.returncode, q.stdout), k.stderr
        assert k.stderr == q.stderr.replace("qemu-img: ", "kite: error: ")
