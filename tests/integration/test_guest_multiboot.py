"""kite run as a test platform (issue 25): multiboot v1 kernels, booted on QEMU as the referee and
on kite. The guest program `multiboot` (tests/guests/multiboot.c) in its multiboot builds, the
ELF32 `multiboot.mb.elf` and the flat `multiboot.mbk.bin` (the a.out kludge), checks the
multiboot information against the memory size, command line and modules given. The kite runs need
KVM (marked kvm); the refusals are found before KVM is touched and run anywhere."""
import os
import struct
import subprocess

import pytest

from conftest import run
from test_guest_programs import boot, guest_elf, qemu_argv

MEM = "64M"
MB_EXPECTED = ["entered through multiboot with EAX 0x2badb002", "CR0.PE set, CR0.PG clear",
               "EFLAGS IF, VM clear", "information flags", "memory map: ",
               "memory map sorted", "mem_lower ", "mem_upper ", "mem_upper ends RAM",
               "memory map RAM", "command line starts with the kernel",
               "command line arrives intact", "boot loader name given"]
MODULES = [(5000, 1), (8192, 2), (1, 3)]


def module_bytes(size, seed):
    return bytes((k * 31 + seed * 7 + (k >> 8)) & 0xff for k in range(size))


@pytest.fixture
def modules(tmp_path):
    """The --initrd / -initrd list of MODULES, each "FILE size=N seed=S"."""
    specs = []
    for i, (size, seed) in enumerate(MODULES):
        path = tmp_path / f"mod{i}.bin"
        path.write_bytes(module_bytes(size, seed))
        specs.append(f"{path} size={size} seed={seed}")
    return ",".join(specs)


def mb_append(kernel, nmods):
    return f"argv0={kernel} mem={MEM} mods={nmods} n=42 expect=a=b=c"


def check_multiboot(r, kernel, nmods, loader):
    expected = list(MB_EXPECTED)
    for i in range(nmods):
        expected += [f"module {i}: {MODULES[i][0]} bytes", f"module {i}: page aligned",
                     f"module {i}: clear of", f"module {i}: content intact"]
    r.assert_all_passed(expected)
    assert f"{nmods} modules, mods= {nmods}" in r.passed, r.output()
    # QEMU's form of the command line: the kernel as given, a space, the arguments.
    line = next(l for l in r.lines if l.startswith("guest: multiboot eax "))
    assert f'cmdline "{kernel} {mb_append(kernel, nmods)}"' in line, r.output()
    assert f'multiboot: boot loader name "{loader}"' in r.lines, r.output()
    assert "multiboot: mem_lower 639 KiB" in " ".join(r.lines), r.output()


def qemu_mb_argv(kernel, append, initrd=None, extra=()):
    argv = qemu_argv("multiboot", append, mem=MEM, extra=extra)
    argv[argv.index("-kernel") + 1] = kernel
    if initrd:
        argv += ["-initrd", initrd]
    return argv


def kite_mb_argv(kite, kernel, append, initrd=None, mem=MEM, extra=()):
    argv = [kite, "run", "--kernel", kernel, "-m", mem, "--console", "stdio", "--no-reboot",
            "--append", append]
    if initrd:
        argv += ["--initrd", initrd]
    return argv + list(extra)


BUILDS = ["mb.elf", "mbk.bin"]


@pytest.mark.parametrize("build", BUILDS)
def test_multiboot_info_qemu(build, modules):
    kernel = guest_elf("multiboot").replace(".elf", "." + build)
    r = boot(qemu_mb_argv(kernel, mb_append(kernel, 3), modules))
    check_multiboot(r, kernel, 3, "qemu")


def test_multiboot_without_modules_qemu():
    kernel = guest_elf("multiboot").replace(".elf", ".mb.elf")
    check_multiboot(boot(qemu_mb_argv(kernel, mb_append(kernel, 0))), kernel, 0, "qemu")


@pytest.mark.kvm
@pytest.mark.parametrize("build", BUILDS)
def test_multiboot_info_kite(kite, build, modules):
    kernel = guest_elf("multiboot").replace(".elf", "." + build)
    r = boot(kite_mb_argv(kite, kernel, mb_append(kernel, 3), modules))
    check_multiboot(r, kernel, 3, "kite")


@pytest.mark.kvm
def test_multiboot_without_modules_kite(kite):
    kernel = guest_elf("multiboot").replace(".elf", ".mb.elf")
    check_multiboot(boot(kite_mb_argv(kite, kernel, mb_append(kernel, 0))), kernel, 0, "kite")


@pytest.mark.kvm
def test_multiboot_build_of_another_program_kite(kite):
    """The same library boots any program as multiboot: the pvh program's entry checks (flat
    32-bit segments through kite's GDT, CR0, CR4, EFLAGS) hold for the multiboot entry too."""
    kernel = guest_elf("pvh").replace(".elf", ".mb.elf")
    r = boot(kite_mb_argv(kite, kernel, "n=42 expect=a=b=c"))
    assert not r.killed and r.returncode == 0, r.output()
    for name in ("CR0.PE set", "CR4 clear", "EFLAGS IF, TF, VM clear",
                 "CS selects a flat 32-bit", "DS selects a flat 32-bit",
                 "SS selects a flat 32-bit", "command line arrives intact"):
        assert any(p.startswith(name) for p in r.passed), r.output()


# ---- refusals: found before KVM is touched, so they run on any host ----------------------------

def refused(kite, kernel, message, initrd=None):
    r = run(kite_mb_argv(kite, str(kernel), "x", initrd=str(initrd) if initrd else None))
    assert r.returncode == 1, r.stderr
    assert r.stderr.startswith("kite: error: ") and message in r.stderr, r.stderr
    assert r.stdout == ""


def patched_flat(tmp_path, name, fields):
    """multiboot.mbk.bin with header words replaced (index: value), checksum kept right."""
    data = bytearray(open(guest_elf("multiboot").replace(".elf", ".mbk.bin"), "rb").read())
    words = list(struct.unpack_from("<8I", data, 0))
    assert words[0] == 0x1BADB002
    for i, v in fields.items():
        words[i] = v
    words[2] = (-(words[0] + words[1])) & 0xffffffff
    struct.pack_into("<8I", data, 0, *words)
    path = tmp_path / name
    path.write_bytes(bytes(data))
    return path


def test_video_mode_request_is_refused(kite, tmp_path):
    kernel = patched_flat(tmp_path, "video.bin", {1: 0x00010007})
    refused(kite, kernel, "asks for a video mode (flags 0x10007, bit 2)")


def test_unknown_required_flag_is_refused(kite, tmp_path):
    kernel = patched_flat(tmp_path, "flag5.bin", {1: 0x00010023})
    refused(kite, kernel, "requires features kite does not know")


def test_load_addresses_outside_ram_are_refused(kite, tmp_path):
    # load_addr at 256 MiB with 64 MiB of RAM.
    base = 0x10000000
    data = open(guest_elf("multiboot").replace(".elf", ".mbk.bin"), "rb").read()
    words = struct.unpack_from("<8I", data, 0)
    shift = base - words[4]
    kernel = patched_flat(tmp_path, "high.bin", {3: words[3] + shift, 4: base,
                                                 5: words[5] + shift, 6: words[6] + shift,
                                                 7: words[7] + shift})
    refused(kite, kernel, "does not fit in 64 MiB of guest RAM")


def test_image_over_the_boot_area_is_refused(kite, tmp_path):
    """Linked at 0x8000, the program's 200 KiB reach kite's strings at 0x20000: the error names
    what it overlaps."""
    data = open(guest_elf("multiboot").replace(".elf", ".mbk.bin"), "rb").read()
    words = struct.unpack_from("<8I", data, 0)
    shift = 0x8000 - words[4]
    kernel = patched_flat(tmp_path, "low.bin", {3: words[3] + shift, 4: 0x8000,
                                                5: words[5] + shift, 6: words[6] + shift,
                                                7: words[7] + shift})
    refused(kite, kernel, "overlaps kite's boot area: the command line and module strings at "
            "0x20000-0x2ffff")


def test_load_end_past_the_file_is_refused(kite, tmp_path):
    data = open(guest_elf("multiboot").replace(".elf", ".mbk.bin"), "rb").read()
    words = struct.unpack_from("<8I", data, 0)
    kernel = patched_flat(tmp_path, "short.bin", {5: words[4] + len(data) + 4096})
    refused(kite, kernel, f"the file has {len(data)} bytes")


def test_module_that_does_not_fit_is_refused(kite, tmp_path):
    big = tmp_path / "big.bin"
    with open(big, "wb") as f:
        f.truncate(80 << 20)
    kernel = guest_elf("multiboot").replace(".elf", ".mb.elf")
    small = tmp_path / "small.bin"
    small.write_bytes(b"m")
    r = run(kite_mb_argv(kite, kernel, "x", initrd=f"{small} a,{big} b"))
    assert r.returncode == 1, r.stderr
    assert "multiboot module 1 (" in r.stderr and "does not fit in guest RAM" in r.stderr, \
        r.stderr
    r = run(kite_mb_argv(kite, kernel, "x", initrd=f"{small},"))
    assert r.returncode == 1 and "boot module 2 has no file name" in r.stderr, r.stderr
    r = run(kite_mb_argv(kite, kernel, "x", initrd=f"{small},{tmp_path}/missing.bin"))
    assert r.returncode == 1 and f"{tmp_path}/missing.bin" in r.stderr, r.stderr


def test_elf64_with_multiboot_header_is_not_a_vmlinux(kite, tmp_path):
    """The issue's 64-bit build without a PVH note: refused with the reason, exit 1 (it was
    entered as a Linux vmlinux and crashed, exit 2)."""
    src = guest_elf("multiboot").replace(".elf", ".mb64.elf")
    kernel = tmp_path / "mb64-nopvh.elf"
    subprocess.run(["objcopy", "--remove-section=.note.Xen", src, str(kernel)], check=True)
    refused(kite, kernel, "a 64-bit ELF with a multiboot header")


def test_qemu_refuses_what_kite_refuses(tmp_path):
    """The referee agrees on the ELF64 case (QEMU 7.2 says "Cannot load x86-64 image")."""
    kernel = guest_elf("multiboot").replace(".elf", ".mb64.elf")
    r = run(qemu_mb_argv(kernel, "x"), timeout=60)
    assert r.returncode == 1 and "x86-64" in r.stderr, r.stderr
