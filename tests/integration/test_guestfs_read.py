"""kite guest reading images: partitions, filesystems, ls, cat, df, copy-out. Referees: sfdisk,
sgdisk, mke2fs, debugfs, dumpe2fs, qemu-img; every file read back is compared byte for byte."""
import json
import os
import shutil
import stat
import subprocess
import time

import pytest

from conftest import run
from test_guestfs_common import (MiB, debugfs, debugfs_ls, extract, make_tree, mkfs, place,
                                 sh)


@pytest.fixture(scope="module")
def tree(tmp_path_factory):
    root = str(tmp_path_factory.mktemp("tree") / "root")
    make_tree(root)
    return root


@pytest.fixture(scope="module")
def ext4(tmp_path_factory, tree):
    return mkfs(str(tmp_path_factory.mktemp("ext4") / "disk.img"), tree, label="rootfs")


def guest(kite, *args, **kw):
    return run([kite, "guest", *args], **kw)


def clean_stderr(r):
    err = r.stderr if isinstance(r.stderr, str) else r.stderr.decode(errors="replace")
    assert "runtime error" not in err and "Sanitizer" not in err, err
    return err


def ok(kite, *args, **kw):
    r = guest(kite, *args, **kw)
    assert r.returncode == 0, r.stderr
    clean_stderr(r)
    return r


def fails(kite, *args, **kw):
    r = guest(kite, *args, **kw)
    assert r.returncode == 1, (r.returncode, r.stdout, r.stderr)
    assert clean_stderr(r).startswith("kite: error: "), r.stderr
    return r


def parse_ls_l(out):
    """{name: (mode string, nlink, uid, gid, size)} from `kite guest ls -l`."""
    res = {}
    for line in out.splitlines():
        f = line.split(None, 7)
        name = f[7].split(" -> ")[0]
        res[name] = (f[0], int(f[1]), int(f[2]), int(f[3]), int(f[4]))
    return res


def walk(root):
    """Relative paths of everything under root, like `ls -R` would print them."""
    out = set()
    for d, dirs, files in os.walk(root):
        for n in dirs + files:
            out.add("/" + os.path.relpath(os.path.join(d, n), root))
    return out


def compare_trees(src, dst, skip=("/lost+found",)):
    """Every file, directory, symlink and FIFO of src exists in dst with the same type, mode,
    owner, mtime (seconds: mke2fs -d stores seconds), content and target."""
    for rel in sorted(walk(src)):
        a, b = src + rel, dst + rel
        sa, sb = os.lstat(a), os.lstat(b)
        assert stat.S_IFMT(sa.st_mode) == stat.S_IFMT(sb.st_mode), rel
        assert stat.S_IMODE(sa.st_mode) == stat.S_IMODE(sb.st_mode), rel
        assert (sa.st_uid, sa.st_gid) == (sb.st_uid, sb.st_gid), rel
        if not stat.S_ISDIR(sa.st_mode):
            assert int(sa.st_mtime) == int(sb.st_mtime), rel
        if stat.S_ISLNK(sa.st_mode):
            assert os.readlink(a) == os.readlink(b), rel
        elif stat.S_ISREG(sa.st_mode):
            with open(a, "rb") as fa, open(b, "rb") as fb:
                assert fa.read() == fb.read(), rel
    assert walk(src) == {p for p in walk(dst) if not p.startswith(skip)}


# ---- partition tables ----

def sfdisk_json(disk):
    return json.loads(sh(["sfdisk", "--json", disk]).stdout)["partitiontable"]


def make_mbr_disk(path):
    with open(path, "wb") as f:
        f.truncate(64 * MiB)
    script = ("label: dos\n"
              "start=2048, size=20480, type=83, bootable\n"
              "start=22528, size=8192, type=82\n"
              "start=30720, type=5\n"
              "size=8192, type=83\n"
              "size=16384, type=8e\n"
              "type=83\n")
    sh(["sfdisk", "-q", path], input=script)
    return path


def test_partitions_mbr_with_logical_match_sfdisk(kite, tmp_path):
    disk = make_mbr_disk(str(tmp_path / "mbr.img"))
    got = json.loads(ok(kite, "partitions", disk, "--output=json").stdout)
    want = sfdisk_json(disk)
    assert got["scheme"] == "mbr"
    parts = {p["number"]: p for p in got["partitions"]}
    assert len(parts) == len(want["partitions"]) == 6
    for w in want["partitions"]:
        n = int(w["node"][len(disk):])
        p = parts[n]
        assert p["start"] == w["start"] * 512, n
        assert p["size"] == w["size"] * 512, n
        assert int(p["type"], 16) == int(w["type"], 16), n
        assert p["bootable"] == bool(w.get("bootable", False)), n
        assert p["kind"] == ("extended" if n == 3 else "logical" if n >= 5 else "primary")
    text = ok(kite, "partitions", disk).stdout
    assert "scheme: mbr" in text and "Linux LVM" in text


def test_partitions_gpt_match_sfdisk_and_survive_a_damaged_primary(kite, tmp_path):
    disk = str(tmp_path / "gpt.img")
    with open(disk, "wb") as f:
        f.truncate(64 * MiB)
    sh(["sgdisk", "-n", "1:2048:+20M", "-t", "1:8300", "-c", "1:root fs",
        "-n", "2:0:+8M", "-t", "2:ef00", "-c", "2:EFI",
        "-n", "3:0:0", "-t", "3:8200", "-c", "3:sw\u00e4p", disk])
    want = sfdisk_json(disk)
    got = json.loads(ok(kite, "partitions", disk, "--output=json").stdout)
    assert got["scheme"] == "gpt"
    assert got["disk_guid"] == want["id"]
    parts = {p["number"]: p for p in got["partitions"]}
    assert len(parts) == 3
    for w in want["partitions"]:
        p = parts[int(w["node"][len(disk):])]
        assert p["start"] == w["start"] * 512
        assert p["size"] == w["size"] * 512
        assert p["type"] == w["type"]
        assert p["uuid"] == w["uuid"]
        assert p["name"] == w["name"]
    assert parts[2]["type_name"] == "EFI System"
    # damage the primary header: the backup at the end of the disk is used
    with open(disk, "r+b") as f:
        f.seek(512)
        f.write(b"\0" * 92)
    r = ok(kite, "partitions", disk, "--output=json")
    assert json.loads(r.stdout)["partitions"] == got["partitions"]
    assert "backup" in r.stderr


def test_partitions_reject_a_looping_extended_chain(kite, tmp_path):
    disk = make_mbr_disk(str(tmp_path / "loop.img"))
    # make the second EBR's "next" entry point back at the first EBR (offset 0)
    with open(disk, "r+b") as f:
        ext = 30720 * 512
        f.seek(ext + 446 + 16 + 8)
        nxt = int.from_bytes(f.read(4), "little")
        f.seek(ext + nxt * 512 + 446 + 16)
        f.write(bytes([0, 0, 0, 0, 5, 0, 0, 0]) + (0).to_bytes(4, "little") +
                (2048).to_bytes(4, "little"))
    r = fails(kite, "partitions", disk)
    assert "loop" in r.stderr


# ---- filesystems ----

def dumpe2fs(img):
    out = {}
    for line in sh(["dumpe2fs", "-h", img]).stdout.splitlines():
        if ":" in line:
            k, v = line.split(":", 1)
            out[k.strip()] = v.strip()
    return out


@pytest.mark.parametrize("fstype", ["ext2", "ext3", "ext4"])
def test_filesystems_report_type_label_uuid_size(kite, tmp_path, fstype):
    img = mkfs(str(tmp_path / "fs.img"), size=32 * MiB, fstype=fstype, label=f"lab-{fstype}")
    got = json.loads(ok(kite, "filesystems", img, "--output=json").stdout)
    d = dumpe2fs(img)
    assert len(got) == 1
    fs = got[0]
    assert fs["type"] == fstype and fs["supported"]
    assert fs["label"] == f"lab-{fstype}"
    assert fs["uuid"] == d["Filesystem UUID"]
    assert fs["size"] == int(d["Block count"]) * int(d["Block size"])


def fat16_boot_sector(label, volid):
    bs = bytearray(512)
    bs[0:3] = b"\xeb\x3c\x90"
    bs[3:11] = b"MSWIN4.1"
    bs[11:13] = (512).to_bytes(2, "little")
    bs[13] = 4
    bs[14:16] = (4).to_bytes(2, "little")
    bs[16] = 2
    bs[17:19] = (512).to_bytes(2, "little")
    bs[19:21] = (16384).to_bytes(2, "little")
    bs[21] = 0xf8
    bs[38] = 0x29
    bs[39:43] = volid.to_bytes(4, "little")
    bs[43:54] = label.ljust(11).encode()
    bs[54:62] = b"FAT16   "
    bs[510:512] = b"\x55\xaa"
    return bytes(bs)


def test_filesystems_in_partitions_swap_vfat_and_lvm(kite, tmp_path, tree):
    disk = make_mbr_disk(str(tmp_path / "disk.img"))
    place(disk, mkfs(str(tmp_path / "p1.img"), tree, size=10 * MiB, label="root"), 2048 * 512)
    swap = str(tmp_path / "swap.img")
    with open(swap, "wb") as f:
        f.truncate(4 * MiB)
    sh(["mkswap", "-q", "-L", "myswap", "-U", "11111111-2222-3333-4444-555555555555", swap])
    place(disk, swap, 22528 * 512)
    parts = {int(p["node"][len(disk):]): p for p in sfdisk_json(disk)["partitions"]}
    with open(disk, "r+b") as f:
        f.seek(parts[5]["start"] * 512)
        f.write(fat16_boot_sector("MYVFAT", 0x1234ABCD))
        f.seek(parts[6]["start"] * 512 + 512)  # LVM2 physical volume label in sector 1
        f.write(b"LABELONE" + b"\0" * 16 + b"LVM2 001")
    got = {f["partition"]: f for f in json.loads(
        ok(kite, "filesystems", disk, "--output=json").stdout)}
    assert got[1]["type"] == "ext4" and got[1]["label"] == "root"
    assert got[2]["type"] == "swap" and got[2]["label"] == "myswap"
    assert got[2]["uuid"] == "11111111-2222-3333-4444-555555555555"
    assert got[5]["type"] == "vfat" and got[5]["label"] == "MYVFAT"
    assert got[5]["uuid"] == "1234-ABCD"
    assert got[6]["type"] == "LVM2_member" and not got[6]["supported"]
    assert got[7]["type"] == "unknown"
    assert 3 not in got  # the extended container holds no filesystem
    text = ok(kite, "filesystems", disk).stdout
    assert "LVM2_member" in text and "(unsupported)" in text
    r = fails(kite, "ls", disk, "/", "-a", "2")
    assert "swap" in r.stderr
    r = fails(kite, "ls", disk, "/", "-a", "6")
    assert "LVM2_member" in r.stderr
    r = fails(kite, "ls", disk, "/", "-a", "3")
    assert "extended" in r.stderr
    fails(kite, "ls", disk, "/", "-a", "9")


def test_default_filesystem_is_the_one_with_os_release(kite, tmp_path, tree):
    disk = make_mbr_disk(str(tmp_path / "disk.img"))
    data = str(tmp_path / "data")
    os.makedirs(data + "/srv")
    with open(data + "/srv/data.txt", "w") as f:
        f.write("data partition\n")
    parts = {int(p["node"][len(disk):]): p for p in sfdisk_json(disk)["partitions"]}
    place(disk, mkfs(str(tmp_path / "p1.img"), data, size=10 * MiB), 2048 * 512)
    p7 = parts[7]
    place(disk, mkfs(str(tmp_path / "p7.img"), tree, size=p7["size"] * 512), p7["start"] * 512)
    # p1 (10 MiB) is larger than... p7; p7 holds /etc/os-release and wins
    assert "os-release" in ok(kite, "ls", disk, "/etc").stdout
    assert ok(kite, "cat", disk, "/srv/data.txt", "-a", "1").stdout == "data partition\n"
    assert ok(kite, "cat", disk, "/srv/data.txt", "-a", "/dev/sda1").stdout == "data partition\n"
    # without any os-release the largest ext filesystem is chosen
    sh(["debugfs", "-w", "-R", "rm /etc/os-release", extract(disk, p7["start"] * 512,
                                                             p7["size"] * 512,
                                                             str(tmp_path / "x.img"))])
    place(disk, str(tmp_path / "x.img"), p7["start"] * 512)
    big = max((1, 7), key=lambda n: parts[n]["size"])
    listing = ok(kite, "ls", disk, "/").stdout.split()
    assert ("srv" in listing) == (big == 1)


# ---- listings and contents ----

def test_ls_long_matches_debugfs(kite, ext4):
    for d in ["/", "/etc", "/home/alice", "/a/b/c", "/empty"]:
        mine = parse_ls_l(ok(kite, "ls", ext4, d, "-l").stdout)
        ref = debugfs_ls(ext4, d)
        assert set(mine) == set(ref), d
        for name, (mode, uid, gid, size) in ref.items():
            m = mine[name]
            assert m[0] == stat.filemode(mode), (d, name)
            assert (m[2], m[3]) == (uid, gid), (d, name)
            if size is not None:
                assert m[4] == size, (d, name)
    plain = ok(kite, "ls", ext4, "/etc").stdout.split("\n")
    assert plain == ["hostname", "os-release", "ssh", ""]


def test_ls_recursive_lists_the_whole_tree(kite, ext4, tree):
    got = set(ok(kite, "ls", ext4, "/", "-R").stdout.splitlines())
    assert got - {"/lost+found"} == walk(tree)
    sub = ok(kite, "ls", ext4, "/a", "-R").stdout.splitlines()
    assert sub == ["/a/b", "/a/b/c", "/a/b/c/deep.bin"]


def test_cat_reads_every_file_byte_for_byte(kite, ext4, tree):
    for rel in ["/hello.txt", "/random.bin", "/a/b/c/deep.bin", "/sparse.img",
                "/etc/os-release"]:
        r = guest(kite, "cat", ext4, rel, text=False)
        assert r.returncode == 0, r.stderr
        with open(tree + rel, "rb") as f:
            assert r.stdout == f.read(), rel
    # symlinks resolve inside the image: /abs-link is the image's /etc/os-release
    with open(tree + "/etc/os-release", "rb") as f:
        want = f.read()
    assert guest(kite, "cat", ext4, "/abs-link", text=False).stdout == want
    assert ok(kite, "cat", ext4, "/dir-link/c/../../b/c/deep.bin", text=False).stdout[:4] == \
        bytes(range(4))
    fails(kite, "cat", ext4, "/etc")
    fails(kite, "cat", ext4, "/nonexistent")


def test_df_matches_the_superblock(kite, ext4):
    d = dumpe2fs(ext4)
    bs = int(d["Block size"])
    line = ok(kite, "df", ext4).stdout.splitlines()[1].split()
    assert line[0] == os.path.basename(ext4) + ":/dev/sda"
    assert int(line[1]) == int(d["Block count"]) * bs // 1024
    free = int(d["Free blocks"])
    assert int(line[2]) == (int(d["Block count"]) - free) * bs // 1024
    assert int(line[3]) == (free - int(d["Reserved block count"])) * bs // 1024
    inodes = ok(kite, "df", ext4, "-i").stdout.splitlines()[1].split()
    assert int(inodes[1]) == int(d["Inode count"])
    assert int(inodes[3]) == int(d["Free inodes"])
    human = ok(kite, "df", ext4, "-h").stdout.splitlines()[1].split()
    assert human[1] == "64M"


def test_df_lists_every_filesystem(kite, tmp_path):
    """Every partition's ext2/3/4 filesystem gets a row (swap and empty ones none), each as
    dumpe2fs counts it; -a picks one, --csv is virt-df's."""
    img = str(tmp_path / "parts.img")
    with open(img, "wb") as f:
        f.truncate(64 * MiB)
    sh(["sfdisk", "-q", img], input="label: dos\n,20M,L\n,8M,S\n,,L\n")
    sh(["mkfs.ext4", "-q", "-F", "-E", f"offset={1 * MiB}", img, "20M"])
    sh(["mkfs.ext2", "-q", "-F", "-E", f"offset={29 * MiB}", img, f"{64 - 29}M"])
    rows = ok(kite, "df", img).stdout.splitlines()
    assert [r.split()[0] for r in rows[1:]] == ["parts.img:/dev/sda1", "parts.img:/dev/sda3"]
    for row, (off, size) in zip(rows[1:], [(1, 20), (29, 35)]):
        part = str(tmp_path / "p.img")
        sh(["dd", f"if={img}", f"of={part}", "bs=1M", f"skip={off}", f"count={size}",
            "status=none"])
        d = dumpe2fs(part)
        assert int(row.split()[1]) == int(d["Block count"]) * int(d["Block size"]) // 1024
    csv = ok(kite, "df", "--csv", "-a", "3", img).stdout.splitlines()
    assert csv[0] == "Virtual Machine,Filesystem,1K-blocks,Used,Available,Use%"
    assert csv[1].startswith('"parts.img",/dev/sda3,') and len(csv) == 2
    r = fails(kite, "df", "-a", "2", img)
    assert "no filesystem kite can read on partition 2" in r.stderr


def test_copy_out_keeps_owners_modes_times_links_and_holes(kite, ext4, tree, tmp_path):
    out = str(tmp_path / "out")
    os.mkdir(out)
    ok(kite, "copy-out", ext4, "/", out)
    # atime first: reading the copies below moves it
    atime = [l for l in debugfs(ext4, "stat /hello.txt").splitlines() if "atime:" in l][0]
    assert os.stat(out + "/hello.txt").st_atime == int(atime.split()[1].split(":")[0], 16)
    compare_trees(tree, out)
    assert os.lstat(out + "/hello.txt").st_ino == os.lstat(out + "/hard-link").st_ino
    assert os.stat(out + "/sparse.img").st_blocks * 512 < 1 * MiB
    assert os.stat(out + "/hello.txt").st_mtime == 981173106
    # named paths land under their last name
    two = str(tmp_path / "two")
    os.mkdir(two)
    ok(kite, "copy-out", ext4, "/etc/os-release", "/a", "/rel-link", two)
    assert sorted(os.listdir(two)) == ["a", "os-release", "rel-link"]
    with open(two + "/a/b/c/deep.bin", "rb") as f:
        assert f.read() == bytes(range(256)) * 1000
    assert os.readlink(two + "/rel-link") == "hello.txt"
    fails(kite, "copy-out", ext4, "/etc", str(tmp_path / "missing-dir"))


@pytest.mark.parametrize("fstype,opts", [
    ("ext2", ["-b", "1024"]),
    ("ext3", ["-b", "4096"]),
    ("ext4", ["-b", "1024"]),
    ("ext4", ["-O", "64bit,huge_file,metadata_csum"]),
    ("ext4", ["-O", "inline_data", "-I", "256"]),
    ("ext4", ["-O", "^extent,^flex_bg,^64bit"]),
])
def test_every_variant_reads_back_exactly(kite, tree, tmp_path, fstype, opts):
    img = mkfs(str(tmp_path / "v.img"), tree, size=48 * MiB, fstype=fstype, opts=opts)
    out = str(tmp_path / "out")
    os.mkdir(out)
    ok(kite, "copy-out", img, "/", out)
    if "inline_data" in opts:
        # mke2fs 1.47.0 -d stores this sparse file with a wrong size when inline_data is on
        # (debugfs dump reads the same short file): compare with the referee's dump instead
        sh(["debugfs", "-R", f"dump /sparse.img {tmp_path}/ref.img", img])
        with open(f"{tmp_path}/ref.img", "rb") as a, open(out + "/sparse.img", "rb") as b:
            assert a.read() == b.read()
        os.unlink(out + "/sparse.img")
        shutil.copy2(tree + "/sparse.img", out + "/sparse.img")
    compare_trees(tree, out)
    for d in ["/", "/a/b/c"]:
        assert set(ok(kite, "ls", img, d).stdout.split()) == set(debugfs_ls(img, d)), d


@pytest.fixture(scope="module")
def htree_img(tmp_path_factory):
    """10,000 names in one directory, indexed (mke2fs -d writes linear directories; e2fsck -D
    builds the hash tree), built once for both builds."""
    tmp = tmp_path_factory.mktemp("htree")
    src = str(tmp / "src")
    os.makedirs(src + "/big")
    names = [f"file-{i:05d}-{'x' * (i % 40)}" for i in range(10000)]
    for n in names:
        with open(f"{src}/big/{n}", "w") as f:
            f.write(n)
    img = mkfs(str(tmp / "h.img"), src, size=64 * MiB)
    run(["e2fsck", "-fyD", img], timeout=600)
    return img, names


def test_htree_directory_with_10000_entries(kite, htree_img):
    img, names = htree_img
    assert "Root node dump" in debugfs(img, "htree /big")
    got = ok(kite, "ls", img, "/big").stdout.split("\n")[:-1]
    assert got == sorted(names)
    assert ok(kite, "cat", img, f"/big/{names[7777]}").stdout == names[7777]


# ---- image formats ----

def test_qcow2_and_vmdk_images_read_like_raw(kite, ext4, tree, tmp_path):
    q = str(tmp_path / "disk.qcow2")
    sh(["qemu-img", "convert", "-O", "qcow2", ext4, q])
    v = str(tmp_path / "disk.vmdk")
    sh(["qemu-img", "convert", "-O", "vmdk", ext4, v])
    for img in (q, v):
        r = guest(kite, "cat", img, "/random.bin", text=False)
        assert r.returncode == 0, r.stderr
        with open(tree + "/random.bin", "rb") as f:
            assert r.stdout == f.read()
        assert set(ok(kite, "ls", img, "/", "-R").stdout.splitlines()) - {"/lost+found"} == \
            walk(tree)


# ---- hostile input ----

def test_paths_and_symlinks_never_leave_the_filesystem(kite, tmp_path, tree):
    src = str(tmp_path / "src")
    os.makedirs(src + "/d")
    os.symlink("../../../../../../etc/passwd", src + "/d/escape")
    os.symlink("/etc/passwd", src + "/abs")
    os.symlink("loop2", src + "/loop1")
    os.symlink("loop1", src + "/loop2")
    img = mkfs(str(tmp_path / "s.img"), src, size=8 * MiB)
    r = fails(kite, "cat", img, "/../../etc/passwd")
    assert "outside" in r.stderr
    r = fails(kite, "cat", img, "/d/escape")
    assert "outside" in r.stderr
    r = fails(kite, "cat", img, "/abs")  # the image's /etc/passwd, which does not exist
    assert "No such file" in r.stderr
    r = fails(kite, "cat", img, "/loop1")
    assert "symbolic links" in r.stderr or "Too many" in r.stderr
    # copy-out keeps the symlinks as symlinks and writes nothing outside the target
    out = str(tmp_path / "out")
    os.mkdir(out)
    ok(kite, "copy-out", img, "/", out)
    assert os.readlink(out + "/d/escape") == "../../../../../../etc/passwd"
    assert sorted(os.listdir(str(tmp_path))) == ["out", "s.img", "src"]


def test_corrupt_images_give_clear_errors(kite, tmp_path, tree):
    img = mkfs(str(tmp_path / "c.img"), tree, size=16 * MiB, fstype="ext2")
    # directory loop: a second name for /a inside /a/b/c
    loop = str(tmp_path / "loop.img")
    sh(["cp", img, loop])
    sh(["debugfs", "-w", "-R", "link /a /a/b/c/again", loop])
    r = fails(kite, "ls", loop, "/", "-R")
    assert "loop" in r.stderr
    out = str(tmp_path / "out")
    os.mkdir(out)
    r = fails(kite, "copy-out", loop, "/a", out)
    assert "loop" in r.stderr
    # an entry whose inode number lies beyond the inode table
    bad = str(tmp_path / "bad.img")
    sh(["cp", img, bad])
    with open(bad, "r+b") as f:
        data = f.read()
        i = data.find(b"\x09\x01hello.txt")  # the directory entry, not the symlink
        assert i > 8
        f.seek(i - 6)
        f.write((0x7FFFFFF0).to_bytes(4, "little"))
    assert "hello.txt" in ok(kite, "ls", bad, "/").stdout
    r = fails(kite, "cat", bad, "/hello.txt")
    assert "inode" in r.stderr.lower()
    fails(kite, "ls", bad, "/", "-l")
    # a corrupt superblock
    sb = str(tmp_path / "sb.img")
    sh(["cp", img, sb])
    with open(sb, "r+b") as f:
        f.seek(1024 + 24)  # s_log_block_size: absurd
        f.write((40).to_bytes(4, "little"))
    fails(kite, "ls", sb, "/")
    with open(sb, "r+b") as f:
        f.seek(1024 + 56)
        f.write(b"\0\0")
    r = fails(kite, "ls", sb, "/")
    assert "ext2/3/4" in r.stderr
    # an image cut short: reads past its end are errors, not crashes
    short = str(tmp_path / "short.img")
    sh(["cp", img, short])
    os.truncate(short, 3 * MiB)
    r = guest(kite, "cat", short, "/random.bin", text=False)
    assert r.returncode in (0, 1) and b"Sanitizer" not in r.stderr


def test_a_running_vm_locks_the_image(kite, ext4, tmp_path):
    img = str(tmp_path / "vm.img")
    sh(["cp", "--sparse=always", ext4, img])
    before = open(img, "rb").read()
    qemu = subprocess.Popen(
        ["qemu-system-x86_64", "-S", "-nodefaults", "-display", "none", "-accel", "tcg",
         "-monitor", "stdio",
         "-drive", f"file={img},format=raw,if=none,id=d0", "-device", "virtio-blk-pci,drive=d0"],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        # The monitor answers only from QEMU's main loop, after the devices were created
        # and the drive locked (its prompt alone comes earlier): no guessing with sleeps.
        qemu.stdin.write(b"info status\n")
        qemu.stdin.flush()
        seen = b""
        while b"VM status" not in seen:
            chunk = qemu.stdout.read1(4096)
            assert chunk, qemu.stderr.read()
            seen += chunk
        r = guest(kite, "write", img, "/new.txt", input="x")
        assert qemu.poll() is None, qemu.stderr.read()
        assert r.returncode == 1 and "Failed to get \"write\" lock" in r.stderr, r.stderr
        assert open(img, "rb").read() == before
        r = fails(kite, "ls", img, "/")
        assert "Is another process using the image" in r.stderr
    finally:
        qemu.kill()
        qemu.wait()
    ok(kite, "write", img, "/new.txt", input="x")
    assert ok(kite, "cat", img, "/new.txt").stdout == "x"


def test_usage_errors(kite, ext4):
    fails(kite, "ls", ext4)
    fails(kite, "frobnicate", ext4)
    fails(kite, "partitions", ext4, "--output=xml")
    r = guest(kite, "--help")
    assert r.returncode == 0 and "copy-out" in r.stdout
    r = guest(kite, "init", "--help")
    assert r.returncode == 0 and r.stdout.startswith("usage: kite guest init IMAGE")
