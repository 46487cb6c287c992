"""fw_cfg (issue 25): QEMU's firmware configuration interface at I/O ports 0x510/0x511 and its
DMA interface at 0x514. The guest program `fw_cfg` (tests/guests/fw_cfg.c) reads the signature,
the feature bits, the RAM size, the vCPU counts, the file directory and etc/e820, and an unknown
key, through the ports and by DMA, and checks them against the mem= and cpus= the host gives: on
QEMU as the referee, and on kite (marked kvm). Both boots carry two boot files (QEMU's -fw_cfg,
kite's --fw-cfg), a file's bytes and a string with a comma, which the program prints by size and
FNV-1a hash. Option refusals and the definition's field run anywhere."""
import json
import os

import pytest

from conftest import run
from test_guest_programs import boot, guest_elf, qemu_argv
from test_machines import Machines

FILE_BYTES = b"hello, fw_cfg\x00\x01binary \"quoted\"" + bytes(range(256)) * 4
STRING = "x,,y z"  # ",," is a comma in QEMU's option syntax, and in kite's


def fnv1a(data):
    h = 2166136261
    for c in data:
        h = ((h ^ c) * 16777619) & 0xffffffff
    return h


def opt_line(name, data):
    text = "".join(chr(c) if 32 <= c < 127 and c != ord('"') else "." for c in data[:40])
    return f'fw_cfg: {name}: {len(data)} bytes fnv1a {fnv1a(data):#x} "{text}"'


@pytest.fixture(scope="module")
def boot_file(tmp_path_factory):
    path = tmp_path_factory.mktemp("fw_cfg") / "blob.bin"
    path.write_bytes(FILE_BYTES)
    return str(path)


def fw_cfg_args(option, path):
    return [option, f"name=opt/kite/blob,file={path}", option, f"name=opt/s,string={STRING}"]


def check_opt_files(r):
    for line in [opt_line("opt/kite/blob", FILE_BYTES), opt_line("opt/s", b"x,y z")]:
        assert line in r.lines, r.output()

EXPECTED = ["signature \"QEMU\"", "features ", "RAM size ", "vCPUs ", "most vCPUs ",
            "file directory: ", "etc/e820 in the directory", "etc/e820: ",
            "etc/e820 RAM adds up to mem=", "unknown key 0x1234 reads as zeros",
            "DMA port reads \"QEMU CFG\"", "DMA read of the signature",
            "DMA read of etc/e820 gives the data port's bytes",
            "DMA read of unknown key 0x1234 gives zeros"]
SHAPES = [("64M", 1), ("200M", 2)]


def check(r):
    r.assert_all_passed(EXPECTED)


@pytest.mark.parametrize("mem,cpus", SHAPES)
def test_fw_cfg_qemu(mem, cpus, boot_file):
    r = boot(qemu_argv("fw_cfg", f"mem={mem} cpus={cpus}", mem=mem, cpus=cpus,
                       extra=fw_cfg_args("-fw_cfg", boot_file)))
    check(r)
    check_opt_files(r)


@pytest.mark.kvm
@pytest.mark.parametrize("mem,cpus", SHAPES)
def test_fw_cfg_kite(kite, mem, cpus, boot_file):
    r = boot([kite, "run", "--kernel", guest_elf("fw_cfg"), "-m", mem, "-c", str(cpus),
              "--console", "stdio", "--no-reboot", "--append", f"mem={mem} cpus={cpus}",
              *fw_cfg_args("--fw-cfg", boot_file)])
    check(r)
    check_opt_files(r)
    # kite's directory holds etc/e820 as key 0x20, then the boot files; features: I/O and DMA.
    assert 'fw_cfg: file 0x20 ' in "\n".join(r.lines) and "features 0x3:" in \
        " ".join(r.passed), r.output()


@pytest.mark.parametrize("value,message", [
    ("opt/x", "give one of file= and string="),
    ("name=opt/x,file=/a,string=b", "give one of file= and string="),
    ("file=/a", "no name="),
    ("name=opt/x,string=", "string is empty"),
    ("name=opt/x,size=3", "unknown key 'size' (name, file, string)"),
    ("name=opt/" + "x" * 52 + ",string=a", "is not 1 to 55 bytes"),
    ("name=opt/x,string=a,junk", "'junk' is not KEY=VALUE"),
])
def test_bad_fw_cfg_values_are_refused(kite, value, message):
    r = run([kite, "run", "--kernel", guest_elf("fw_cfg"), "--fw-cfg", value])
    assert r.returncode == 1, r.stderr
    assert r.stderr.startswith("kite: error: --fw-cfg: ") and message in r.stderr, r.stderr


def test_a_missing_or_twice_named_file_is_refused(kite, tmp_path):
    r = run([kite, "run", "--kernel", guest_elf("fw_cfg"), "--fw-cfg",
             f"opt/x,file={tmp_path}/none"])
    assert r.returncode == 1, r.stderr
    assert f"kite: error: fw_cfg file {tmp_path}/none: cannot read it" in r.stderr, r.stderr
    r = run([kite, "run", "--kernel", guest_elf("fw_cfg"), "--fw-cfg", "opt/x,string=a",
             "--fw-cfg", "name=opt/x,string=b"])
    assert r.returncode == 1, r.stderr
    assert "kite: error: --fw-cfg: fw_cfg file 'opt/x' named twice" in r.stderr, r.stderr


def test_a_definition_keeps_the_boot_files(kite, boot_file):
    """Stored as the options' text, the file's path absolute (kite create runs elsewhere)."""
    m = Machines(kite)
    try:
        rel = os.path.relpath(boot_file)
        m.create("fw", "--fw-cfg", f"opt/kite/blob,file={rel}", "--fw-cfg",
                 f"name=opt/s,string={STRING}")
        got = json.loads(m.ok("dumpjson", "fw").stdout)["fw_cfg"]
        assert len(got) == 2 and got[0].startswith("name=opt/kite/blob,file=/"), got
        assert os.path.samefile(got[0].split(",file=", 1)[1], boot_file), got
        assert got[1] == f"name=opt/s,string={STRING}", got
        m.create("plain")
        assert "fw_cfg" not in json.loads(m.ok("dumpjson", "plain").stdout)
    finally:
        m.cleanup()
