"""kite guest on LVM2 logical volumes. Real lvm2 is the referee: pvcreate and vgcreate on loop
devices over the test's images, then vgcfgrestore of an edited vgcfgbackup writes the logical
volumes (lvcreate needs device-mapper, which containers lack). lvs and pvs report the layout;
the test puts filesystems into the extents they report (as device-mapper maps them) and takes
them back out with dd for debugfs and e2fsck."""
import contextlib
import hashlib
import json
import os
import re
import shutil
import struct
import zlib

import pytest

from conftest import run
from test_guestfs_common import MiB, debugfs, debugfs_ls, e2fsck_clean, make_tree, mkfs, sh
from test_guestfs_read import compare_trees, dumpe2fs, fails, ok, walk

pytestmark = pytest.mark.skipif(
    os.geteuid() != 0 or not os.path.exists("/dev/loop-control"),
    reason="cannot create loop devices here (needs root and /dev/loop-control)")


# ---- lvm2 on loop devices ----

@contextlib.contextmanager
def loops(img, places):
    """Loop devices over [offset, offset + size) of img for each place; always detached.
    losetup -f --show picks and binds a free device at once, so concurrent tests do not
    collide."""
    devs = []
    try:
        for off, size in places:
            devs.append(sh(["losetup", "-f", "--show", "-o", str(off), "--sizelimit",
                            str(size), img]).stdout.strip())
        yield devs
    finally:
        for d in devs:
            run(["losetup", "-d", d])


class Lvm:
    """lvm2 confined to our loop devices (other tests' loops stay invisible to it), without
    udev, device-mapper activation, a devices file or backups under /etc/lvm."""

    def __init__(self, devs):
        accept = ",".join(f'"a|^{d}$|"' for d in devs)
        self.config = (f'devices{{obtain_device_list_from_udev=0 use_devicesfile=0 '
                       f'filter=[{accept},"r|.*|"]}} activation{{udev_sync=0 udev_rules=0}} '
                       f'backup{{backup=0 archive=0}}')

    def __call__(self, *argv):
        r = run([argv[0], "--config", self.config, *argv[1:]])
        assert r.returncode == 0, f"{argv}: {r.returncode}\n{r.stdout}\n{r.stderr}"
        return r.stdout

    def report(self, cmd, fields, *args):
        out = self(cmd, "--noheadings", "--separator", ";", "--units", "b", "--nosuffix",
                   "-o", fields, *args)
        return [[f.strip() for f in line.split(";")] for line in out.splitlines() if line.strip()]


class Layout:
    """Where lvm2 says each LV's extents are: byte offsets on the disk image."""

    def __init__(self, lvm, vg, devs, places):
        self.extent = int(lvm.report("vgs", "vg_extent_size", vg)[0][0])
        self.pvs = {}  # device -> (disk offset of its first extent, PV UUID)
        for name, pe_start, uuid in lvm.report("pvs", "pv_name,pe_start,pv_uuid", *devs):
            self.pvs[name] = (places[devs.index(name)][0] + int(pe_start), uuid)
        self.lvs = {}
        for row in lvm.report("lvs", "lv_name,segtype,seg_start_pe,seg_size_pe,stripes,"
                              "stripe_size,seg_pe_ranges", "-a", vg):
            name, segtype, start, count, stripes, stripe_size, ranges = row
            areas = []
            for r in ranges.split():
                m = re.fullmatch(r"(/dev/loop\d+):(\d+)-(\d+)", r)
                if m:
                    areas.append((m.group(1), int(m.group(2))))
            self.lvs.setdefault(name.strip("[]"), []).append({
                "type": segtype, "start": int(start), "count": int(count),
                "stripes": int(stripes), "stripe_size": int(stripe_size), "areas": areas})

    def pieces(self, lv):
        """(LV offset, disk offset, length) runs of the LV, as dm-linear and dm-stripe map."""
        E = self.extent
        for seg in sorted(self.lvs[lv], key=lambda s: s["start"]):
            base, length, n = seg["start"] * E, seg["count"] * E, len(seg["areas"])
            if n == 1:
                dev, pe = seg["areas"][0]
                yield base, self.pvs[dev][0] + pe * E, length
                continue
            chunk = seg["stripe_size"]
            for c in range(length // chunk):
                dev, pe = seg["areas"][c % n]
                yield base + c * chunk, self.pvs[dev][0] + pe * E + (c // n) * chunk, chunk

    def size(self, lv):
        return sum(s["count"] for s in self.lvs[lv]) * self.extent

    def put(self, disk, lv, fs_img):
        with open(fs_img, "rb") as src, open(disk, "r+b") as dst:
            for lo, do, n in self.pieces(lv):
                src.seek(lo)
                dst.seek(do)
                dst.write(src.read(n))

    def take(self, disk, lv, out):
        with open(disk, "rb") as src, open(out, "wb") as dst:
            for lo, do, n in self.pieces(lv):
                src.seek(do)
                dst.seek(lo)
                dst.write(src.read(n))
        return out

    def outside(self, disk, lvs):
        """A checksum of every byte of the disk outside the LVs' extents."""
        runs = sorted((do, do + n) for lv in lvs for _, do, n in self.pieces(lv))
        h, pos = hashlib.sha256(), 0
        with open(disk, "rb") as f:
            for a, b in runs + [(os.path.getsize(disk), 0)]:
                f.seek(pos)
                h.update(f.read(a - pos))
                pos = max(pos, b)
        return h.hexdigest()


def lv_text(name, segments, status=("READ", "WRITE", "VISIBLE"), extra=""):
    """A logical_volumes entry; segments: (start, count, type-specific lines)."""
    segs = "".join(
        f"\t\t\tsegment{i + 1} {{\n\t\t\t\tstart_extent = {s}\n\t\t\t\textent_count = {c}\n"
        f"{body}\t\t\t}}\n" for i, (s, c, body) in enumerate(segments))
    ident = hashlib.sha256(name.encode()).hexdigest()
    ident = "-".join([ident[0:6], ident[6:10], ident[10:14], ident[14:18], ident[18:22],
                      ident[22:26], ident[26:32]])
    flags = ", ".join(f'"{f}"' for f in status)
    return (f"\t\t{name} {{\n\t\t\tid = \"{ident}\"\n\t\t\tstatus = [{flags}]\n"
            f"\t\t\tflags = []\n{extra}\t\t\tsegment_count = {len(segments)}\n{segs}\t\t}}\n")


def linear(pv, pe):
    return f'\t\t\t\ttype = "striped"\n\t\t\t\tstripe_count = 1\n\t\t\t\tstripes = ["{pv}", {pe}]\n'


def make_vg(img, places, vg, lvs, tmp, force=False):
    """PVs at `places` of img, volume group `vg` over them in that order (pv0, pv1, ...) and
    the logical volumes `lvs` (lv_text entries); returns lvm2's Layout."""
    with loops(img, places) as devs:
        lvm = Lvm(devs)
        lvm("pvcreate", "-q", *devs)
        lvm("vgcreate", "-q", vg, *devs)
        backup = os.path.join(tmp, f"{vg}.txt")
        lvm("vgcfgbackup", "-q", "-f", backup, vg)
        with open(backup) as f:
            text = f.read()
        for i, d in enumerate(devs):  # vgcreate numbers the PVs in the order given
            assert re.search(rf'pv{i} {{\s*id = "[^"]+"\s*device = "{d}"', text), text
        end = text.rindex("}")  # the volume group's section closes the file
        text = text[:end] + "\tlogical_volumes {\n" + "".join(lvs) + "\t}\n" + text[end:]
        with open(backup + ".new", "w") as f:
            f.write(text)
        lvm("vgcfgrestore", "-q", *(["--force"] if force else []), "-f", backup + ".new", vg)
        return Layout(lvm, vg, devs, places)


def new_disk(path, size, table=None):
    with open(path, "wb") as f:
        f.truncate(size)
    if table:
        sh(["sfdisk", "-q", path], input=table)
    return path


def sha(path):
    with open(path, "rb") as f:
        return hashlib.sha256(f.read()).hexdigest()


@pytest.fixture(scope="module")
def tree(tmp_path_factory):
    root = str(tmp_path_factory.mktemp("tree") / "root")
    make_tree(root)
    return root


@pytest.fixture(scope="module")
def whole(tmp_path_factory, tree):
    """A 64 MiB disk that is one PV (no partition table) with LV vgtest/lvroot: logical
    extents 0-2 on physical 8-10, 3-5 on 1-3 (out of order), holding an ext4 of `tree`."""
    tmp = str(tmp_path_factory.mktemp("whole"))
    disk = new_disk(os.path.join(tmp, "lvm.img"), 64 * MiB)
    layout = make_vg(disk, [(0, 64 * MiB)], "vgtest",
                     [lv_text("lvroot", [(0, 3, linear("pv0", 8)), (3, 3, linear("pv0", 1))])],
                     tmp)
    assert [(s["start"], s["count"], s["areas"][0][1]) for s in layout.lvs["lvroot"]] == \
        [(0, 3, 8), (3, 3, 1)]
    fs = mkfs(os.path.join(tmp, "fs.img"), tree, size=layout.size("lvroot"), label="lvroot")
    layout.put(disk, "lvroot", fs)
    return disk, layout, fs


def copy(src, tmp_path, name="disk.img"):
    dst = str(tmp_path / name)
    shutil.copyfile(src, dst)
    return dst


# ---- reading ----

def test_an_lv_reads_like_its_filesystem(kite, whole, tree, tmp_path):
    disk, layout, fs = whole
    got = {f["device"]: f for f in json.loads(ok(kite, "filesystems", disk,
                                                 "--output=json").stdout)}
    assert got["/dev/sda"]["type"] == "LVM2_member"
    lv = got["/dev/vgtest/lvroot"]
    d = dumpe2fs(fs)
    assert (lv["type"], lv["supported"], lv["label"]) == ("ext4", True, "lvroot")
    assert lv["uuid"] == d["Filesystem UUID"]
    assert lv["size"] == int(d["Block count"]) * int(d["Block size"])
    assert lv["partition_size"] == layout.size("lvroot")
    assert (lv["vg"], lv["lv"], lv["lv_kind"], lv["partition"]) == \
        ("vgtest", "lvroot", "linear", None)
    # every name lvm2 and device-mapper give it, and the default choice
    for a in [[], ["-a", "/dev/vgtest/lvroot"], ["-a", "/dev/mapper/vgtest-lvroot"],
              ["-a", "vgtest/lvroot"]]:
        assert set(ok(kite, "ls", disk, "/", "-R", *a).stdout.splitlines()) - \
            {"/lost+found"} == walk(tree), a
    for rel in ["/random.bin", "/a/b/c/deep.bin", "/sparse.img", "/etc/os-release"]:
        r = ok(kite, "cat", disk, rel, text=False)
        with open(tree + rel, "rb") as f:
            assert r.stdout == f.read(), rel
    out = str(tmp_path / "out")
    os.mkdir(out)
    ok(kite, "copy-out", disk, "/", out, "-a", "/dev/vgtest/lvroot")
    compare_trees(tree, out)
    # df: one row, as dumpe2fs counts it
    rows = ok(kite, "df", disk).stdout.splitlines()
    assert len(rows) == 2 and rows[1].split()[0] == "lvm.img:/dev/vgtest/lvroot"
    assert int(rows[1].split()[1]) == int(d["Block count"]) * int(d["Block size"]) // 1024
    csv = ok(kite, "df", disk, "--csv", "-a", "/dev/mapper/vgtest-lvroot").stdout.splitlines()
    assert csv[1].startswith('"lvm.img",/dev/vgtest/lvroot,')
    fails(kite, "ls", disk, "/", "-a", "/dev/vgtest/nope")
    fails(kite, "ls", disk, "/", "-a", "/dev/mapper/vgtest-nope")


def test_partitions_report_the_volume_group_as_lvs_does(kite, whole):
    disk, layout, _ = whole
    got = json.loads(ok(kite, "partitions", disk, "--output=json").stdout)
    [vg] = got["volume_groups"]
    assert vg["name"] == "vgtest" and vg["extent_size"] == layout.extent
    [(dev, (first, uuid))] = layout.pvs.items()
    [pv] = vg["physical_volumes"]
    assert (pv["device"], pv["uuid"], pv["pe_start"]) == ("/dev/sda", uuid, first)
    [lv] = vg["logical_volumes"]
    assert lv["device"] == "/dev/vgtest/lvroot" and lv["size"] == layout.size("lvroot")
    assert [(s["start_extent"], s["extent_count"], [st["pe"] for st in s["stripes"]])
            for s in lv["segments"]] == \
        [(s["start"], s["count"], [a[1] for a in s["areas"]]) for s in layout.lvs["lvroot"]]
    text = ok(kite, "partitions", disk).stdout
    assert "volume group vgtest" in text and "/dev/vgtest/lvroot" in text


# ---- writing ----

def test_writes_to_a_linear_lv_are_clean_and_all_or_nothing(kite, whole, tmp_path):
    src, layout, _ = whole
    disk = copy(src, tmp_path)
    outside = layout.outside(disk, ["lvroot"])
    data = os.urandom(3 * MiB + 7)
    ok(kite, "write", disk, "/etc/big.bin", input=data, text=False)
    ok(kite, "mkdir", disk, "-p", "/srv/www", "-a", "/dev/mapper/vgtest-lvroot")
    ok(kite, "write", disk, "/srv/www/index.html", input="<h1>lvm</h1>\n")
    ok(kite, "rm", disk, "/random.bin")
    lv = layout.take(disk, "lvroot", str(tmp_path / "lv.img"))
    e2fsck_clean(lv)
    assert run(["debugfs", "-R", "cat /etc/big.bin", lv], text=False).stdout == data
    assert debugfs(lv, "cat /srv/www/index.html") == "<h1>lvm</h1>\n"
    assert "random.bin" not in debugfs(lv, "ls /")
    assert layout.outside(disk, ["lvroot"]) == outside  # nothing written beside the LV
    # a write that cannot fit leaves the filesystem as it was
    before, free = debugfs_ls(lv, "/"), dumpe2fs(lv)["Free blocks"]
    r = fails(kite, "write", disk, "/huge.bin", input=os.urandom(40 * MiB), text=False)
    assert b"No space left on device" in r.stderr
    lv = layout.take(disk, "lvroot", str(tmp_path / "lv.img"))
    e2fsck_clean(lv)
    assert debugfs_ls(lv, "/") == before and dumpe2fs(lv)["Free blocks"] == free
    assert layout.outside(disk, ["lvroot"]) == outside


# ---- partitions, two PVs, names with dashes ----

@pytest.fixture(scope="module")
def mbr(tmp_path_factory, tree):
    """An MBR disk: sda1 a 10 MiB ext4 without os-release; sda2 and sda3 LVM PVs of volume
    group vg-data (PVs numbered sda3 first) with lv-root (an ext4 of `tree` over both PVs)
    and lv-two (an ext2)."""
    tmp = str(tmp_path_factory.mktemp("mbr"))
    disk = new_disk(os.path.join(tmp, "mbr.img"), 64 * MiB,
                    "label: dos\nstart=2048, size=20480, type=83\n"
                    "start=22528, size=49152, type=8e\nstart=71680, type=8e\n")
    parts = json.loads(sh(["sfdisk", "--json", disk]).stdout)["partitiontable"]["partitions"]
    place = [(p["start"] * 512, p["size"] * 512) for p in parts]
    layout = make_vg(disk, [place[2], place[1]], "vg-data", [
        lv_text("lv-root", [(0, 3, linear("pv0", 0)), (3, 2, linear("pv1", 2))]),
        lv_text("lv-two", [(0, 1, linear("pv1", 0))]),
    ], tmp)
    data = os.path.join(tmp, "data")
    os.makedirs(data + "/srv")
    with open(data + "/srv/data.txt", "w") as f:
        f.write("on sda1\n")
    fs1 = mkfs(os.path.join(tmp, "p1.img"), data, size=10 * MiB)
    sh(["dd", f"if={fs1}", f"of={disk}", "bs=1M", f"seek={place[0][0]}", "oflag=seek_bytes",
        "conv=notrunc", "status=none"])
    two = os.path.join(tmp, "two")
    os.makedirs(two)
    with open(two + "/two.txt", "w") as f:
        f.write("lv-two\n")
    root = mkfs(os.path.join(tmp, "root.img"), tree, size=layout.size("lv-root"))
    layout.put(disk, "lv-root", root)
    fs2 = mkfs(os.path.join(tmp, "two.img"), two, size=layout.size("lv-two"), fstype="ext2")
    layout.put(disk, "lv-two", fs2)
    devs = {d: f"/dev/sda{i + 1}" for d in layout.pvs for i, p in enumerate(place)
            if layout.pvs[d][0] - p[0] in range(0, p[1])}
    return disk, layout, devs, {"root": root, "two": fs2, "sda1": fs1}


def test_lvs_in_partitions_over_two_pvs(kite, mbr, tree):
    disk, layout, devs, fss = mbr
    got = {f["device"]: f for f in json.loads(ok(kite, "filesystems", disk,
                                                 "--output=json").stdout)}
    assert [got[f"/dev/sda{n}"]["type"] for n in (1, 2, 3)] == \
        ["ext4", "LVM2_member", "LVM2_member"]
    assert got["/dev/vg-data/lv-root"]["type"] == "ext4"
    assert got["/dev/vg-data/lv-two"]["type"] == "ext2"
    assert got["/dev/vg-data/lv-two"]["uuid"] == dumpe2fs(fss["two"])["Filesystem UUID"]
    # lv-root holds /etc/os-release: it is the default, though sda1 comes first
    assert set(ok(kite, "ls", disk, "/", "-R").stdout.splitlines()) - {"/lost+found"} == \
        walk(tree)
    with open(tree + "/random.bin", "rb") as f:
        assert ok(kite, "cat", disk, "/random.bin", text=False).stdout == f.read()
    assert ok(kite, "cat", disk, "/two.txt", "-a", "/dev/mapper/vg--data-lv--two").stdout == \
        "lv-two\n"
    assert ok(kite, "cat", disk, "/srv/data.txt", "-a", "1").stdout == "on sda1\n"
    # the PVs as pvs reports them, on the partitions kite names
    [vg] = json.loads(ok(kite, "partitions", disk, "--output=json").stdout)["volume_groups"]
    want = {devs[d]: uuid for d, (_, uuid) in layout.pvs.items()}
    assert {p["device"]: p["uuid"] for p in vg["physical_volumes"]} == want
    assert [p["device"] for p in vg["physical_volumes"]] == ["/dev/sda3", "/dev/sda2"]
    # df: every filesystem of every partition and LV
    rows = ok(kite, "df", disk).stdout.splitlines()[1:]
    assert [r.split()[0] for r in rows] == \
        ["mbr.img:/dev/sda1", "mbr.img:/dev/vg-data/lv-root", "mbr.img:/dev/vg-data/lv-two"]
    for row, name in zip(rows, ["sda1", "root", "two"]):
        d = dumpe2fs(fss[name])
        assert int(row.split()[1]) == int(d["Block count"]) * int(d["Block size"]) // 1024
    r = fails(kite, "ls", disk, "/", "-a", "2")
    assert "LVM2_member" in r.stderr


def test_writes_across_two_pvs(kite, mbr, tmp_path):
    src, layout, _, _ = mbr
    disk = copy(src, tmp_path)
    outside = layout.outside(disk, ["lv-root"])
    data = os.urandom(2 * MiB)
    ok(kite, "write", disk, "/across.bin", "-a", "/dev/vg-data/lv-root", input=data,
       text=False)
    ok(kite, "chmod", disk, "0600", "/two.txt", "-a", "vg-data/lv-two")
    lv = layout.take(disk, "lv-root", str(tmp_path / "root.img"))
    e2fsck_clean(lv)
    assert run(["debugfs", "-R", "cat /across.bin", lv], text=False).stdout == data
    two = layout.take(disk, "lv-two", str(tmp_path / "two.img"))
    e2fsck_clean(two)
    assert "Mode:  0600" in debugfs(two, "stat /two.txt")
    assert layout.outside(disk, ["lv-root", "lv-two"]) == \
        Layout.outside(layout, src, ["lv-root", "lv-two"])
    assert layout.outside(disk, ["lv-root"]) != outside  # lv-two did change


# ---- striped ----

@pytest.fixture(scope="module")
def striped(tmp_path_factory, tree):
    """Two 30 MiB partitions, one PV each; LV vgs/stripy: 6 extents in 2 stripes of 64 KiB,
    from extent 0 of pv0 and extent 1 of pv1."""
    tmp = str(tmp_path_factory.mktemp("striped"))
    disk = new_disk(os.path.join(tmp, "str.img"), 64 * MiB,
                    "label: dos\nstart=2048, size=61440, type=8e\nstart=63488, type=8e\n")
    parts = json.loads(sh(["sfdisk", "--json", disk]).stdout)["partitiontable"]["partitions"]
    place = [(p["start"] * 512, p["size"] * 512) for p in parts]
    body = ('\t\t\t\ttype = "striped"\n\t\t\t\tstripe_count = 2\n\t\t\t\tstripe_size = 128\n'
            '\t\t\t\tstripes = [\n\t\t\t\t\t"pv0", 0,\n\t\t\t\t\t"pv1", 1\n\t\t\t\t]\n')
    layout = make_vg(disk, place, "vgs", [lv_text("stripy", [(0, 6, body)])], tmp)
    [seg] = layout.lvs["stripy"]
    assert (seg["stripes"], seg["stripe_size"], [a[1] for a in seg["areas"]]) == \
        (2, 64 * 1024, [0, 1])
    fs = mkfs(os.path.join(tmp, "fs.img"), tree, size=layout.size("stripy"))
    layout.put(disk, "stripy", fs)
    return disk, layout, fs


def test_a_striped_lv_reads_and_refuses_writes(kite, striped, tree, tmp_path):
    src, layout, fs = striped
    disk = copy(src, tmp_path)
    out = str(tmp_path / "out")
    os.mkdir(out)
    ok(kite, "copy-out", disk, "/", out)
    compare_trees(tree, out)
    got = {f["device"]: f for f in json.loads(ok(kite, "filesystems", disk,
                                                 "--output=json").stdout)}
    assert got["/dev/vgs/stripy"]["lv_kind"] == "striped"
    assert got["/dev/vgs/stripy"]["uuid"] == dumpe2fs(fs)["Filesystem UUID"]
    assert ok(kite, "df", disk).stdout.splitlines()[1].startswith("disk.img:/dev/vgs/stripy")
    before = sha(disk)
    r = fails(kite, "write", disk, "/new.txt", input="x")
    assert "striped" in r.stderr and "linear" in r.stderr
    fails(kite, "mkdir", disk, "/d", "-a", "/dev/vgs/stripy")
    assert sha(disk) == before


# ---- what kite does not map ----

def test_thin_lvs_are_listed_and_refused_by_type(kite, tmp_path):
    disk = new_disk(str(tmp_path / "thin.img"), 64 * MiB)
    pool = ('\t\t\t\ttype = "thin-pool"\n\t\t\t\tmetadata = "pool_tmeta"\n'
            '\t\t\t\tpool = "pool_tdata"\n\t\t\t\ttransaction_id = 1\n'
            '\t\t\t\tchunk_size = 128\n\t\t\t\tdiscards = "passdown"\n'
            '\t\t\t\tzero_new_blocks = 1\n')
    thin = ('\t\t\t\ttype = "thin"\n\t\t\t\tthin_pool = "pool"\n'
            '\t\t\t\ttransaction_id = 0\n\t\t\t\tdevice_id = 1\n')
    layout = make_vg(disk, [(0, 64 * MiB)], "vgthin", [
        lv_text("pool", [(0, 2, pool)]),
        lv_text("thin1", [(0, 4, thin)]),
        lv_text("pool_tmeta", [(0, 1, linear("pv0", 10))], status=("READ", "WRITE")),
        lv_text("pool_tdata", [(0, 2, linear("pv0", 11))], status=("READ", "WRITE")),
        lv_text("plain", [(0, 2, linear("pv0", 0))]),
    ], str(tmp_path), force=True)
    assert {s["type"] for n in ("pool", "thin1") for s in layout.lvs[n]} == \
        {"thin-pool", "thin"}
    layout.put(disk, "plain", mkfs(str(tmp_path / "plain.img"), size=layout.size("plain"),
                                   fstype="ext2"))
    got = {f["device"]: f for f in json.loads(ok(kite, "filesystems", disk,
                                                 "--output=json").stdout)}
    assert set(got) == {"/dev/sda", "/dev/vgthin/pool", "/dev/vgthin/thin1",
                        "/dev/vgthin/plain"}  # hidden LVs are pieces of the pool
    assert got["/dev/vgthin/thin1"]["lv_kind"] == "thin"
    assert "thin LV" in got["/dev/vgthin/thin1"]["error"]
    assert got["/dev/vgthin/pool"]["lv_kind"] == "thin-pool"
    assert got["/dev/vgthin/plain"]["type"] == "ext2"
    r = fails(kite, "ls", disk, "/", "-a", "/dev/vgthin/thin1")
    assert "thin LV" in r.stderr
    r = fails(kite, "ls", disk, "/", "-a", "/dev/mapper/vgthin-pool")
    assert "thin-pool LV" in r.stderr
    assert "lost+found" in ok(kite, "ls", disk, "/").stdout  # the one kite can read
    rows = ok(kite, "df", disk).stdout.splitlines()[1:]
    assert [r.split()[0] for r in rows] == ["thin.img:/dev/vgthin/plain"]
    parts = json.loads(ok(kite, "partitions", disk, "--output=json").stdout)
    kinds = {lv["name"]: (lv["kind"], lv["visible"])
             for lv in parts["volume_groups"][0]["logical_volumes"]}
    assert kinds == {"pool": ("thin-pool", True), "thin1": ("thin", True),
                     "pool_tmeta": ("linear", False), "pool_tdata": ("linear", False),
                     "plain": ("linear", True)}


# ---- damaged metadata ----

def lvm_crc(data):
    return ~zlib.crc32(data, ~0xf597a6cf & 0xffffffff) & 0xffffffff


def metadata(disk, pv=0):
    """(offset of the mda header, offset of the text, its bytes) of the PV at `pv`."""
    with open(disk, "rb") as f:
        f.seek(pv + 512)
        label = f.read(512)
        assert label[:8] == b"LABELONE"
        hdr = pv + struct.unpack_from("<Q", label, 32 + 72)[0]
        f.seek(hdr)
        mda = f.read(512)
        off, size = struct.unpack_from("<QQ", mda, 40)
        f.seek(hdr + off)
        return hdr, hdr + off, f.read(size)


def reseal(disk, text, pv=0):
    """Writes `text` as the PV's current metadata, with the checksums lvm2 would give it."""
    hdr, at, _ = metadata(disk, pv)
    text = text + b"\0"
    with open(disk, "r+b") as f:
        f.seek(at)
        f.write(text)
        f.seek(hdr)
        mda = bytearray(f.read(512))
        struct.pack_into("<QI", mda, 48, len(text), lvm_crc(text))
        struct.pack_into("<I", mda, 0, lvm_crc(bytes(mda[4:])))
        f.seek(hdr)
        f.write(mda)


def test_damaged_metadata_gives_clear_errors(kite, whole, tmp_path):
    src, _, _ = whole
    disk = copy(src, tmp_path)
    _, at, text = metadata(disk)
    # a flipped byte: the checksum says so; nothing is guessed
    with open(disk, "r+b") as f:
        f.seek(at + 20)
        f.write(bytes([text[20] ^ 1]))
    r = fails(kite, "ls", disk, "/")
    assert "checksum" in r.stderr and "-a" in r.stderr
    r = fails(kite, "ls", disk, "/", "-a", "/dev/vgtest/lvroot")
    assert "checksum" in r.stderr and "no logical volume" in r.stderr
    r = guest_rc(kite, "filesystems", disk)
    assert r.returncode == 1 and "LVM2_member" in r.stdout
    # lvm2-valid checksums over texts that lie
    body = text.rstrip(b"\0")
    hostile = {
        b"segment past its PV": body.replace(b'"pv0", 8', b'"pv0", 13'),
        b"extents used twice": body.replace(b'"pv0", 8', b'"pv0", 2'),
        b"huge count": body.replace(b"segment_count = 2", b"segment_count = 4294967296"),
        b"unterminated string": body[:body.index(b'"pv0"') + 3],
        b"deep nesting": body.replace(b"lvroot {", b"lvroot {" + b"a {" * 5000 + b"}" * 5000),
    }
    assert all(v != body for v in hostile.values())
    for why, bad in hostile.items():
        reseal(disk, bad)
        r = fails(kite, "ls", disk, "/", "-a", "/dev/vgtest/lvroot")
        assert "LVM2 metadata" in r.stderr or "volume group vgtest" in r.stderr, (why, r.stderr)
        r = fails(kite, "df", disk)
    # a damaged label is ignored, as lvm2 ignores it: the volume group is gone
    shutil.copyfile(src, disk)
    with open(disk, "r+b") as f:
        f.seek(512 + 40)
        f.write(b"X")
    r = guest_rc(kite, "cat", disk, "/etc/os-release", "-a", "/dev/vgtest/lvroot")
    assert r.returncode == 1
    assert "warning" in r.stderr and "wrong checksum" in r.stderr
    assert "kite: error: no logical volume /dev/vgtest/lvroot" in r.stderr


def guest_rc(kite, *args):
    r = run([kite, "guest", *args])
    assert "Sanitizer" not in r.stderr and "runtime error" not in r.stderr, r.stderr
    return r


# ---- kite guest mount -m ----

@pytest.mark.skipif(not os.path.exists("/dev/fuse"), reason="no /dev/fuse")
def test_mount_m_names_the_lv_as_guestmount_does(kite, whole, tree, tmp_path):
    from test_guestfs_mount import Mounted
    src, layout, _ = whole
    disk = copy(src, tmp_path)
    mnt = str(tmp_path / "mnt")
    os.mkdir(mnt)
    with Mounted(kite, disk, mnt, "-m", "/dev/vgtest/lvroot", "--ro"):
        compare_trees(tree, mnt)
    with Mounted(kite, disk, mnt, "-m", "/dev/mapper/vgtest-lvroot:/"):
        with open(mnt + "/etc/mounted.txt", "w") as f:
            f.write("through FUSE\n")
    lv = layout.take(disk, "lvroot", str(tmp_path / "lv.img"))
    e2fsck_clean(lv)
    assert debugfs(lv, "cat /etc/mounted.txt") == "through FUSE\n"
    r = fails(kite, "mount", disk, mnt, "-m", "/dev/vgtest/lvroot:/boot")
    assert "-m" in r.stderr


def test_fish_lists_and_mounts_a_logical_volume(kite, whole, tmp_path):
    """guestfish's names for LVs work in kite guest fish: listed, mounted, written."""
    disk = copy(whole[0], tmp_path)
    r = run([kite, "guest", "fish", "-a", disk],
            input="run\nlist-filesystems\nmount /dev/vgtest/lvroot /\nwrite /fish.txt hi\n"
                  "cat /fish.txt\n")
    assert r.returncode == 0, r.stderr
    assert r.stdout == "/dev/sda: LVM2_member\n/dev/vgtest/lvroot: ext4\nhi"
    r = run([kite, "guest", "fish", "-a", disk, "-i"], input="cat /fish.txt\n")
    assert (r.returncode, r.stdout) == (0, "hi")
