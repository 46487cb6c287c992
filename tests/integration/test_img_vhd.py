"""kite img on Hyper-V / Virtual PC images qemu-img wrote (vpc: VHD, vhdx), read only: info,
map, the bytes read and compare must be qemu-img's, and a damaged or hostile header gives
qemu-img's error after "kite: error:" (exit 1), never a crash under ASan."""
import json

import pytest

from conftest import run

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
                "vhdx-512": ["-o", "logical_sector_size=4096,block_size=8M"]}[kind]
        p = d / ("disk." + fmt)
        sh("qemu-img", "create", "-q", "-f", fmt, *opts, str(p), "12M")
        sh("qemu-io", "-f", fmt, *sum((["-c", w] for w in WRITES), []), str(p))
    # a fixed VHD has no header at its start: qemu-img probes it as raw, so name the format
    return p, (["-f", fmt] if kind == "vpc-fixed" else [])


KINDS = ["vpc-dynamic", "vpc-fixed", "vpc-forcesize", "vpc-converted"]


@pytest.fixture(scope="module", params=KINDS)
def image(request, tmp_path_factory):
    return build(request.param, tmp_path_factory.mktemp(request.param))


def test_reads_as_qemu_img_does(kite, image, tmp_path):
    img, f = image
    for argv in (["info", "--output=json"], ["info"], ["map", "--output=json"], ["map"]):
        q = run(["qemu-img", *argv, *f, str(img)])
        k = run([kite, "img", *argv, *f, str(img)])
        assert (k.returncode, k.stdout) == (q.returncode, q.stdout), argv + [k.stderr]
    mine, theirs = tmp_path / "k.raw", tmp_path / "q.raw"
    r = run([kite, "img", "convert", *f, "-O", "raw", str(img), str(mine)])
    assert r.returncode == 0, r.stderr
    sh("qemu-img", "convert", *f, "-O", "raw", str(img), str(theirs))
    assert mine.read_bytes() == theirs.read_bytes()
    # compare against the raw copy, then against one byte changed in the last write
    r = run([kite, "img", "compare", *f, "-F", "raw", str(img), str(theirs)])
    assert (r.returncode, r.stdout) == (0, "Images are identical.\n"), r.stderr
    with open(theirs, "r+b") as fh:
        fh.seek(9 * 2**20 + 4097)
        fh.write(b"\1")
    q = run(["qemu-img", "compare", *f, "-F", "raw", str(img), str(theirs)])
    k = run([kite, "img", "compare", *f, "-F", "raw", str(img), str(theirs)])
    assert (k.returncode, k.stdout) == (q.returncode, q.stdout) == (1, q.stdout), k.stderr


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
def test_damaged_vpc_is_refused_as_qemu_img_does(kite, tmp_path, pristine_vpc, damage):
    data = bytearray(pristine_vpc)
    damage_vpc(data, damage)
    img = tmp_path / "d.vhd"
    img.write_bytes(bytes(data))
    refused_alike(kite, img, "vpc")
