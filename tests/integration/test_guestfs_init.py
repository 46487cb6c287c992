"""kite guest init: the SSH set-up of a new machine done offline. Files are checked one by one
(content, mode, owner) with debugfs; sshd -t/-T and visudo -c judge the results when
openssh-server and sudo are installed; a second run must not change a single byte."""
import hashlib
import os
import shutil
import subprocess

import pytest

from conftest import run
from test_guestfs_common import MiB, debugfs, debugfs_ls, e2fsck_clean, mkfs, sh
from test_guestfs_read import fails, ok

SSHD_CONFIG = ("Include /etc/ssh/sshd_config.d/*.conf\n"
               "#Port 22\n"
               "PermitRootLogin yes\n"
               "KbdInteractiveAuthentication no\n"
               "UsePAM yes\n"
               "Subsystem sftp /usr/lib/openssh/sftp-server\n"
               "Match User anoncvs\n"
               "\tPasswordAuthentication yes\n")
KEY1 = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIFv6E4IiG+tzVafKYvTXOSxP7CF6zoxbP/2vNls09Ypa a@h\n"
KEY2 = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIGXe2n8r3ZfSQjOq3Jm0S5vZ3pB6bV0h9R7fq8k9i1aZ b@h\n"


def debian_root(root):
    for d in ["etc/ssh/sshd_config.d", "bin", "root", "home"]:
        os.makedirs(f"{root}/{d}")
    files = {
        "etc/passwd": "root:x:0:0:root:/root:/bin/bash\nbob:x:1000:1000::/home/bob:/bin/bash\n",
        "etc/group": "root:x:0:\nsudo:x:27:\nshadow:x:42:\nbob:x:1000:\n",
        "etc/shadow": "root:$y$j9T$abc$def:19000:0:99999:7:::\nbob:!:19000:0:99999:7:::\n",
        "etc/gshadow": "root:*::\nsudo:*::\nshadow:*::\nbob:!::\n",
        "etc/ssh/sshd_config": SSHD_CONFIG,
        "etc/hosts": "127.0.0.1\tlocalhost\n127.0.1.1\tdebian\n::1\tlocalhost\n",
        "etc/hostname": "debian\n",
        "etc/os-release": "ID=debian\n",
        "bin/bash": "#!/bin/sh\n",
    }
    for name, text in files.items():
        with open(f"{root}/{name}", "w") as f:
            f.write(text)
    os.chmod(f"{root}/etc/shadow", 0o640)
    os.chown(f"{root}/etc/shadow", 0, 42)
    os.chmod(f"{root}/etc/gshadow", 0o640)
    os.chown(f"{root}/etc/gshadow", 0, 42)
    os.chmod(f"{root}/root", 0o700)


def cat(img, path):
    return run(["debugfs", "-R", f"cat {path}", img]).stdout


def attrs(img, path):
    """(mode, uid, gid) of a path, from debugfs."""
    d, name = os.path.split(path)
    m, uid, gid, _ = debugfs_ls(img, d or "/")[name]
    return m, uid, gid


def sha(path):
    with open(path, "rb") as f:
        return hashlib.sha256(f.read()).hexdigest()


@pytest.fixture
def image(tmp_path):
    root = str(tmp_path / "root")
    debian_root(root)
    return mkfs(str(tmp_path / "deb.img"), root, size=32 * MiB)


@pytest.fixture
def keyfiles(tmp_path):
    k1, k2 = str(tmp_path / "k1.pub"), str(tmp_path / "k2.pub")
    with open(k1, "w") as f:
        f.write(KEY1)
    with open(k2, "w") as f:
        f.write("# a comment\n" + KEY2 + KEY1)
    return k1, k2


def full_init(kite, img, keyfiles):
    return ok(kite, "init", img, "--ssh-port", "2222", "--user", "alice", "--group", "wheel",
              "--sudo-nopasswd", "wheel", "--authorized-key", keyfiles[0],
              "--authorized-key", keyfiles[1], "--no-password-login", "--no-root-login",
              "--hostname", "web-1", "--root-password-lock")


def test_init_writes_every_file_as_specified(kite, image, keyfiles, tmp_path):
    full_init(kite, image, keyfiles)
    e2fsck_clean(image)
    assert cat(image, "/etc/passwd").splitlines()[-1] == \
        "alice:x:1001:1001::/home/alice:/bin/bash"
    group = cat(image, "/etc/group").splitlines()
    assert "alice:x:1001:" in group
    assert "wheel:x:999:alice" in group
    assert "wheel:!::alice" in cat(image, "/etc/gshadow").splitlines()
    shadow = cat(image, "/etc/shadow").splitlines()
    assert shadow[0] == "root:!$y$j9T$abc$def:19000:0:99999:7:::"
    assert shadow[2].startswith("alice:!:") and shadow[2].endswith(":0:99999:7:::")
    assert attrs(image, "/etc/shadow") == (0o100640, 0, 42)  # kept, not reset
    assert attrs(image, "/home/alice") == (0o40700, 1001, 1001)
    assert attrs(image, "/home/alice/.ssh") == (0o40700, 1001, 1001)
    assert attrs(image, "/home/alice/.ssh/authorized_keys") == (0o100600, 1001, 1001)
    assert cat(image, "/home/alice/.ssh/authorized_keys") == KEY1 + KEY2
    assert cat(image, "/etc/sudoers.d/kite-wheel") == "%wheel ALL=(ALL:ALL) NOPASSWD: ALL\n"
    assert attrs(image, "/etc/sudoers.d/kite-wheel") == (0o100440, 0, 0)
    assert cat(image, "/etc/hostname") == "web-1\n"
    assert cat(image, "/etc/hosts") == "127.0.0.1\tlocalhost\n127.0.1.1\tweb-1\n::1\tlocalhost\n"
    assert cat(image, "/etc/ssh/sshd_config.origin") == SSHD_CONFIG
    conf = cat(image, "/etc/ssh/sshd_config")
    head = conf.splitlines()[:5]
    assert head[1:] == ["Port 2222", "PermitRootLogin no", "PasswordAuthentication no",
                        "KbdInteractiveAuthentication no"]
    assert "PermitRootLogin yes" not in conf
    assert conf.endswith("Match User anoncvs\n\tPasswordAuthentication yes\n")

    if shutil.which("sshd") or os.path.exists("/usr/sbin/sshd"):
        cfg = str(tmp_path / "sshd_config")
        with open(cfg, "w") as f:
            f.write(conf)
        hk = str(tmp_path / "hostkey")
        sh(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", hk])
        os.makedirs("/run/sshd", exist_ok=True)
        sh(["/usr/sbin/sshd", "-t", "-f", cfg, "-h", hk])
        eff = sh(["/usr/sbin/sshd", "-T", "-f", cfg, "-h", hk,
                  "-C", "user=alice,host=h,addr=10.0.0.1"]).stdout.splitlines()
        for want in ["port 2222", "permitrootlogin no", "passwordauthentication no"]:
            assert want in eff
    if shutil.which("visudo") or os.path.exists("/usr/sbin/visudo"):
        f = str(tmp_path / "sudoers")
        with open(f, "w") as fh:
            fh.write(cat(image, "/etc/sudoers.d/kite-wheel"))
        sh(["/usr/sbin/visudo", "-c", "-f", f])


def test_init_twice_changes_nothing(kite, image, keyfiles):
    full_init(kite, image, keyfiles)
    first = sha(image)
    full_init(kite, image, keyfiles)
    assert sha(image) == first
    # a new key is added once, the origin stays the distribution's file
    ok(kite, "init", image, "--user", "alice", "--authorized-key", keyfiles[1], "--ssh-port", "22")
    assert cat(image, "/home/alice/.ssh/authorized_keys") == KEY1 + KEY2
    assert cat(image, "/etc/ssh/sshd_config.origin") == SSHD_CONFIG
    assert cat(image, "/etc/ssh/sshd_config").count("Port ") == 2  # "#Port 22" and ours
    e2fsck_clean(image)


def test_init_root_keys_and_minimal_images(kite, tmp_path, keyfiles):
    root = str(tmp_path / "min")
    os.makedirs(root + "/etc")
    with open(root + "/etc/passwd", "w") as f:
        f.write("root:x:0:0::/root:/bin/sh\n")
    img = mkfs(str(tmp_path / "min.img"), root, size=16 * MiB)
    ok(kite, "init", img, "--authorized-key", keyfiles[0], "--ssh-port", "2022")
    assert attrs(img, "/root/.ssh/authorized_keys") == (0o100600, 0, 0)
    assert cat(img, "/etc/ssh/sshd_config").splitlines()[1] == "Port 2022"
    assert "sshd_config.origin" not in debugfs_ls(img, "/etc/ssh")  # there was no original
    r = fails(kite, "init", img, "--root-password-lock")
    assert "shadow" in r.stderr
    ok(kite, "init", img, "--user", "carol")
    assert cat(img, "/etc/passwd").splitlines()[-1] == "carol:x:1000:1000::/home/carol:/bin/sh"
    assert "carol:x:1000:" in cat(img, "/etc/group")
    e2fsck_clean(img)


def test_init_rejects_bad_input_without_writing(kite, image, tmp_path):
    before = sha(image)
    priv = str(tmp_path / "id_ed25519")
    with open(priv, "w") as f:
        f.write("-----BEGIN OPENSSH PRIVATE KEY-----\nb3BlbnNzaC1rZXktdjEAAAAA\n")
    r = fails(kite, "init", image, "--authorized-key", priv)
    assert "public key" in r.stderr
    fails(kite, "init", image, "--authorized-key", str(tmp_path / "missing.pub"))
    fails(kite, "init", image, "--user", "Bad:Name")
    fails(kite, "init", image, "--user", "../etc")
    fails(kite, "init", image, "--group", "wheel")
    fails(kite, "init", image, "--hostname", "bad host")
    fails(kite, "init", image, "--hostname", "x\n127.0.0.1 evil")
    fails(kite, "init", image, "--ssh-port", "0")
    fails(kite, "init", image, "--ssh-port", "22x")
    fails(kite, "init", image, "--sudo-nopasswd", "wh.eel")
    assert sha(image) == before
