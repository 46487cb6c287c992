"""kite guest fish: guestfish scripts against expected output, with debugfs and e2fsck as
referees for what they changed."""
import os

import pytest

from conftest import run
from test_guestfs_common import MiB, debugfs, e2fsck_clean, sh


@pytest.fixture
def disk(tmp_path):
    """An MBR disk: ext4 on partition 1, nothing on partition 2."""
    img = str(tmp_path / "disk.img")
    with open(img, "wb") as f:
        f.truncate(48 * MiB)
    sh(["sfdisk", "-q", img], input="label: dos\n,32M,L\n,,L\n")
    sh(["mkfs.ext4", "-q", "-F", "-E", f"offset={1 * MiB}", img, "32M"])
    return img


def part1(img, tmp_path):
    """Partition 1 as a file of its own, for debugfs and e2fsck."""
    out = str(tmp_path / "p1.img")
    sh(["dd", f"if={img}", f"of={out}", "bs=1M", "skip=1", "count=32", "status=none"])
    return out


def fish(kite, *args, script="", **kw):
    return run([kite, "guest", "fish", *args], input=script, **kw)


def test_a_script_sees_and_changes_the_filesystem(kite, disk, tmp_path):
    host = tmp_path / "host.txt"
    host.write_bytes(b"from the host\n")
    script = f"""# comments and blank lines are fine

run
list-devices
list-partitions
list-filesystems
mount /dev/sda1 /
mkdir-p /etc/app/conf.d
write /etc/app/app.conf "name = kite\\nport = 22\\n"
upload {host} /etc/app/conf.d/host.txt
cat /etc/app/app.conf
ls /etc/app
download /etc/app/conf.d/host.txt {tmp_path}/back.txt
"""
    r = fish(kite, "-a", disk, script=script)
    assert r.returncode == 0, r.stderr
    assert r.stdout == ("/dev/sda\n/dev/sda1\n/dev/sda2\n"
                        "/dev/sda1: ext4\n/dev/sda2: unknown\n"
                        "name = kite\nport = 22\n"
                        "app.conf\nconf.d\n")
    assert (tmp_path / "back.txt").read_bytes() == b"from the host\n"
    p1 = part1(disk, tmp_path)
    e2fsck_clean(p1)
    assert debugfs(p1, "cat /etc/app/app.conf") == "name = kite\nport = 22\n"
    assert debugfs(p1, "cat /etc/app/conf.d/host.txt") == "from the host\n"


def test_a_failure_ends_the_script_unless_dashed(kite, disk, tmp_path):
    r = fish(kite, "-a", disk, "-m", "/dev/sda1",
             script="-rm /not-there\nmkdir /made\nrm /not-there\nmkdir /never\n")
    assert r.returncode == 1
    assert r.stderr.count("kite: error: ") == 2, r.stderr
    listing = debugfs(part1(disk, tmp_path), "ls -l /")
    assert "made" in listing and "never" not in listing


def test_read_only_and_usage_errors(kite, disk, tmp_path):
    before = open(disk, "rb").read()
    r = fish(kite, "--ro", "-a", disk, "-i", script="mkdir /x\n")
    assert r.returncode == 1 and "read-only" in r.stderr
    r = fish(kite, "-a", disk, script="ls /\n")
    assert r.returncode == 1 and "run" in r.stderr  # nothing opened yet
    r = fish(kite, "-a", disk, script="run\nmount /dev/sda2 /\n")
    assert r.returncode == 1 and r.stderr.startswith("kite: error: ")
    r = fish(kite, "-a", disk, script="run\nfrobnicate\n")
    assert r.returncode == 1 and "unknown command" in r.stderr
    r = fish(kite, "-a", disk, script='run\nwrite /x "unterminated\n')
    assert r.returncode == 1 and "quote" in r.stderr
    assert open(disk, "rb").read() == before


def test_edit_runs_the_editor_on_a_copy(kite, disk, tmp_path):
    editor = tmp_path / "ed.sh"
    editor.write_text("#!/bin/sh\nsed -i 's/22/2222/' \"$1\"\n")
    editor.chmod(0o755)
    env = dict(os.environ, EDITOR=str(editor))
    r = fish(kite, "-a", disk, "-m", "/dev/sda1",
             script='write /cfg "port 22\\n"\nedit /cfg\ncat /cfg\n', env=env)
    assert r.returncode == 0, r.stderr
    assert r.stdout == "port 2222\n"


def test_script_from_a_file_and_inspection(kite, disk, tmp_path):
    script = tmp_path / "s.fish"
    script.write_text("write /hello hi\nls /\n")
    r = run([kite, "guest", "fish", "-a", disk, "-i", "-f", str(script)])
    assert r.returncode == 0, r.stderr
    assert r.stdout.split() == ["hello", "lost+found"]
