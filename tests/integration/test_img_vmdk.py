"""kite img reading vmdk (monolithicSparse and streamOptimized), with qemu-img as referee."""
import json
import os
import struct
import zlib

import pytest

from conftest import run

PATTERN = [  # (offset, length, byte) written into the source raw image
    (0, 1 << 20, 0xAB),
    (3 << 20, 100 << 10, 0x11),
    (7 << 20 | 512, 4096, 0x5C),
]
SIZE = 10 << 20


def make_raw(path):
    with open(path, "wb") as f:
        f.truncate(SIZE)
        for off, length, byte in PATTERN:
            f.seek(off)
            f.write(bytes([byte]) * length)


def qemu_img(*args):
    r = run(["qemu-img", *args])
    assert r.returncode == 0, r.stderr
    return r.stdout


@pytest.fixture(params=["monolithicSparse", "streamOptimized"])
def vmdk(request, tmp_path):
    raw = tmp_path / "src.img"
    make_raw(raw)
    out = tmp_path / "disk.vmdk"
    qemu_img("convert", "-f", "raw", "-O", "vmdk", "-o", f"subformat={request.param}",
             str(raw), str(out))
    return raw, out


def test_seed_convert_vmdk_to_qcow2(kite, vmdk, tmp_path):
    raw, disk = vmdk
    out = tmp_path / "disk.qcow2"
    r = run([kite, "img", "convert", "-p", "-f", "vmdk", "-O", "qcow2", str(disk), str(out)])
    assert r.returncode == 0, r.stderr
    assert "(100.00/100%)" in r.stdout
    r = run(["qemu-img", "check", str(out)])
    assert r.returncode == 0, r.stdout + r.stderr
    assert "No errors were found" in r.stdout
    r = run(["qemu-img", "compare", "-f", "raw", "-F", "qcow2", str(raw), str(out)])
    assert r.returncode == 0, r.stdout


def test_read_matches_qemu(kite, vmdk, tmp_path):
    _, disk = vmdk
    mine, theirs = tmp_path / "k.raw", tmp_path / "q.raw"
    r = run([kite, "img", "convert", "-O", "raw", str(disk), str(mine)])
    assert r.returncode == 0, r.stderr
    qemu_img("convert", "-O", "raw", str(disk), str(theirs))
    assert mine.read_bytes() == theirs.read_bytes()
    # zero grains and holes are not written: the output is sparse
    assert os.stat(mine).st_blocks * 512 < 2 << 20


def test_info_and_map_json_match_qemu(kite, vmdk):
    _, disk = vmdk
    for verb in ("info", "map"):
        r = run([kite, "img", verb, "--output=json", str(disk)])
        assert r.returncode == 0, r.stderr
        assert json.loads(r.stdout) == json.loads(qemu_img(verb, "--output=json", str(disk)))


def test_map_human_matches_qemu(kite, vmdk):
    _, disk = vmdk
    r = run([kite, "img", "map", str(disk)])
    q = run(["qemu-img", "map", str(disk)])
    assert r.returncode == q.returncode
    if q.returncode == 0:
        assert r.stdout == q.stdout
    else:  # compressed grains have no offset to show
        assert "compressed clusters" in r.stderr


def vmware_stream(path, grains):
    """A streamOptimized file as VMware writes it: grain directory only in the footer.
    `grains` maps grain index -> 64 KiB of data."""
    capacity = 64 << 11  # 64 MiB in sectors
    gsec = 128

    def header(gd_offset):
        h = struct.pack("<4sIIQQQQIQQQB4sH", b"KDMV", 3, 0x30001, capacity, gsec, 1, 20, 512,
                        0, gd_offset, 128, 0, b"\n \r\n", 1)
        return h.ljust(512, b"\0")

    desc = (f'# Disk DescriptorFile\nversion=1\nCID=12345678\nparentCID=ffffffff\n'
            f'createType="streamOptimized"\n\nRW {capacity} SPARSE "{path.name}"\n')
    out = bytearray(header(0xFFFFFFFFFFFFFFFF))
    out += desc.encode().ljust(20 * 512, b"\0")
    out += b"\0" * (128 * 512 - len(out))
    table = [0] * 512
    for idx, data in sorted(grains.items()):
        table[idx] = len(out) // 512
        comp = zlib.compress(data)
        rec = struct.pack("<QI", idx * gsec, len(comp)) + comp
        out += rec + b"\0" * (-len(rec) % 512)
    gt_sector = len(out) // 512 + 1
    out += struct.pack("<QII", 4, 0, 1).ljust(512, b"\0")  # grain table marker
    out += struct.pack("<512I", *table)
    gd_sector = len(out) // 512 + 1
    out += struct.pack("<QII", 1, 0, 2).ljust(512, b"\0")  # grain directory marker
    out += struct.pack("<I", gt_sector).ljust(512, b"\0")
    out += struct.pack("<QII", 1, 0, 3).ljust(512, b"\0")  # footer marker
    out += header(gd_sector)
    out += b"\0" * 512  # end of stream
    path.write_bytes(bytes(out))


def test_vmware_stream_with_footer(kite, tmp_path):
    grains = {0: bytes(range(256)) * 256, 5: b"\x42" * 65536, 400: os.urandom(65536)}
    disk = tmp_path / "vmware.vmdk"
    vmware_stream(disk, grains)
    mine, theirs = tmp_path / "k.raw", tmp_path / "q.raw"
    r = run([kite, "img", "convert", "-f", "vmdk", "-O", "raw", str(disk), str(mine)])
    assert r.returncode == 0, r.stderr
    qemu_img("convert", "-f", "vmdk", "-O", "raw", str(disk), str(theirs))
    data = mine.read_bytes()
    assert data == theirs.read_bytes()
    assert data[5 << 16:6 << 16] == grains[5]
    assert data[400 << 16:401 << 16] == grains[400]


def test_corrupt_vmdk_is_a_clear_error(kite, vmdk, tmp_path):
    _, disk = vmdk
    data = bytearray(disk.read_bytes())
    bad = tmp_path / "bad.vmdk"
    # grain directory pointing far beyond the end of the file
    data[56:64] = struct.pack("<Q", 1 << 40)
    bad.write_bytes(bytes(data))
    r = run([kite, "img", "convert", "-f", "vmdk", "-O", "raw", str(bad), str(tmp_path / "o")])
    assert r.returncode == 1
    assert r.stderr.startswith("kite: error: ")
    assert "grain directory" in r.stderr
    # truncated file: the grain data is gone
    bad.write_bytes(disk.read_bytes()[:70000])
    r = run([kite, "img", "convert", "-f", "vmdk", "-O", "raw", str(bad), str(tmp_path / "o")])
    assert r.returncode == 1
    assert "kite: error: " in r.stderr


def test_vmdk_is_read_only(kite, vmdk, tmp_path):
    _, disk = vmdk
    before = disk.read_bytes()
    r = run([kite, "img", "resize", "-f", "vmdk", str(disk), "+1M"])
    assert r.returncode == 1
    assert r.stderr.startswith("kite: error: ")
    assert disk.read_bytes() == before


def test_info_human_and_qcow2_overlay(kite, vmdk, tmp_path):
    _, disk = vmdk
    r = run([kite, "img", "info", str(disk)])
    assert r.returncode == 0, r.stderr
    assert r.stdout == qemu_img("info", str(disk))
    # a qcow2 overlay on the vmdk: the chain is read through the vmdk driver
    top = tmp_path / "top.qcow2"
    qemu_img("create", "-q", "-f", "qcow2", "-b", disk.name, "-F", "vmdk", str(top))
    run(["qemu-io", "-c", "write -P 0x77 512k 1M", str(top)])
    for args in (["info", "--backing-chain"], ["map", "--output=json"]):
        r = run([kite, "img", *args, str(top)])
        assert r.returncode == 0, r.stderr
        assert r.stdout == qemu_img(*args, str(top))
    mine, theirs = tmp_path / "k.raw", tmp_path / "q.raw"
    assert run([kite, "img", "convert", "-O", "raw", str(top), str(mine)]).returncode == 0
    qemu_img("convert", "-O", "raw", str(top), str(theirs))
    assert mine.read_bytes() == theirs.read_bytes()


def test_check_like_qemu(kite, vmdk, tmp_path):
    _, disk = vmdk
    for extra in ([], ["--output=json"]):
        r = run([kite, "img", "check", *extra, str(disk)])
        q = run(["qemu-img", "check", *extra, str(disk)])
        assert (r.returncode, r.stdout) == (q.returncode, q.stdout) == (0, q.stdout)
    cut = tmp_path / "cut.vmdk"
    cut.write_bytes(disk.read_bytes()[:70000])  # grains now point past the end
    r = run([kite, "img", "check", str(cut)])
    q = run(["qemu-img", "check", str(cut)])
    assert r.returncode == q.returncode == 1
    assert "points after EOF" in r.stderr and "points after EOF" in q.stderr


def test_compare_sparse_and_stream_like_qemu(kite, tmp_path):
    raw = tmp_path / "src.img"
    make_raw(raw)
    paths = []
    for sub in ("monolithicSparse", "streamOptimized"):
        p = tmp_path / f"{sub}.vmdk"
        qemu_img("convert", "-f", "raw", "-O", "vmdk", "-o", f"subformat={sub}", str(raw),
                 str(p))
        paths.append(str(p))
    for args in ([], ["-s"]):
        for pair in (paths, [str(raw)] + paths[:1]):
            r = run([kite, "img", "compare", *args, *pair])
            q = run(["qemu-img", "compare", *args, *pair])
            assert (r.returncode, r.stdout) == (q.returncode, q.stdout), (args, pair)
