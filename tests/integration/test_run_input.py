"""kite run: bad input is refused with 'kite: error: ...' and exit code 1 before any guest runs."""
import os
import struct

import pytest

from conftest import run

HAVE_KVM = os.path.exists("/dev/kvm")


def tiny_elf(path, load_addr=0x100000, code=b"\xf4", memsz=None):
    """Writes a minimal ELF64 x86-64 executable with one PT_LOAD segment at load_addr."""
    ehsize, phentsize = 64, 56
    offset = ehsize + phentsize
    memsz = memsz if memsz is not None else len(code)
    ehdr = struct.pack("<4sBBBBB7sHHIQQQIHHHHHH", b"\x7fELF", 2, 1, 1, 0, 0, b"\0" * 7,
                       2, 62, 1, load_addr, ehsize, 0, 0, ehsize, phentsize, 1, 0, 0, 0)
    phdr = struct.pack("<IIQQQQQQ", 1, 5, offset, load_addr, load_addr, len(code), memsz, 0x1000)
    with open(path, "wb") as f:
        f.write(ehdr + phdr + code)
    return path


def assert_input_error(r, *fragments):
    assert r.returncode == 1, (r.returncode, r.stderr)
    assert r.stderr.startswith("kite: error: "), r.stderr
    for frag in fragments:
        assert frag in r.stderr, r.stderr


def test_missing_kernel_option(kite):
    assert_input_error(run([kite, "run"]), "--kernel")


def test_unreadable_kernel(kite, tmp_path):
    assert_input_error(run([kite, "run", "--kernel", str(tmp_path / "nope")]),
                       "nope", "No such file")


def test_not_a_kernel(kite, tmp_path):
    junk = tmp_path / "junk.bin"
    junk.write_bytes(os.urandom(8192))
    assert_input_error(run([kite, "run", "--kernel", str(junk)]), "not a kernel")


def test_truncated_elf(kite, tmp_path):
    elf = tiny_elf(str(tmp_path / "k.elf"))
    data = open(elf, "rb").read()
    open(elf, "wb").write(data[:80])  # program header cut in half
    r = run([kite, "run", "--kernel", elf])
    assert_input_error(r)


def test_segment_beyond_memory(kite, tmp_path):
    elf = tiny_elf(str(tmp_path / "big.elf"), memsz=200 << 20)
    assert_input_error(run([kite, "run", "--kernel", elf, "-m", "64M"]))


@pytest.mark.parametrize("cpus", ["0", "-1", "x", "255"])
def test_bad_cpu_count(kite, tmp_path, cpus):
    elf = tiny_elf(str(tmp_path / "k.elf"))
    assert_input_error(run([kite, "run", "--kernel", elf, "--cpus", cpus]), "--cpus")


@pytest.mark.parametrize("mem", ["12X", "M", "1M"])
def test_bad_memory_size(kite, tmp_path, mem):
    elf = tiny_elf(str(tmp_path / "k.elf"))
    assert_input_error(run([kite, "run", "--kernel", elf, "-m", mem]), "memory")


def test_memory_more_than_host(kite, tmp_path):
    elf = tiny_elf(str(tmp_path / "k.elf"))
    assert_input_error(run([kite, "run", "--kernel", elf, "-m", "64T"]), "more than this host")


def test_initrd_does_not_fit(kite, tmp_path):
    elf = tiny_elf(str(tmp_path / "k.elf"))
    initrd = tmp_path / "initrd"
    with open(initrd, "wb") as f:
        f.truncate(100 << 20)  # sparse: 100 MiB into a 64 MiB guest
    assert_input_error(run([kite, "run", "--kernel", elf, "--initrd", str(initrd), "-m", "64M"]),
                       "initrd")


def test_bad_console(kite, tmp_path):
    elf = tiny_elf(str(tmp_path / "k.elf"))
    assert_input_error(run([kite, "run", "--kernel", elf, "--console", "vga"]), "--console")


def test_unknown_option(kite):
    assert_input_error(run([kite, "run", "--frobnicate"]), "unknown option")


def test_no_pvm_defaults_is_an_option(kite, tmp_path):
    r = run([kite, "run", "--no-pvm-defaults", "--kernel", str(tmp_path / "nope")])
    assert_input_error(r, "nope", "No such file")


@pytest.mark.skipif(HAVE_KVM, reason="this host has /dev/kvm")
def test_no_kvm_is_a_clear_error(kite, tmp_path):
    elf = tiny_elf(str(tmp_path / "k.elf"))
    assert_input_error(run([kite, "run", "--kernel", elf, "--console", "none"]), "/dev/kvm")


def test_missing_disk_image(kite, tmp_path):
    elf = tiny_elf(str(tmp_path / "k.elf"))
    assert_input_error(run([kite, "run", "--kernel", elf, "--disk", str(tmp_path / "none.img")]),
                       "none.img")


def test_corrupt_qcow2_disk(kite, tmp_path):
    elf = tiny_elf(str(tmp_path / "k.elf"))
    bad = tmp_path / "bad.qcow2"
    bad.write_bytes(b"QFI\xfb" + b"\xff" * 508)
    assert_input_error(run([kite, "run", "--kernel", elf, "--disk", f"{bad},format=qcow2"]))


@pytest.mark.parametrize("spec", ["user,hostfwd=tcp::notaport-:22", "bogus", "user,mac=zz"])
def test_bad_net_option(kite, tmp_path, spec):
    elf = tiny_elf(str(tmp_path / "k.elf"))
    assert_input_error(run([kite, "run", "--kernel", elf, "--net", spec]))


def test_disk_in_use_is_refused(kite, tmp_path):
    """A disk another process writes (qemu-io here, a VM in life) is locked as QEMU locks it."""
    import subprocess
    elf = tiny_elf(str(tmp_path / "k.elf"))
    img = tmp_path / "busy.img"
    with open(img, "wb") as f:
        f.truncate(16 << 20)
    holder = subprocess.Popen(["qemu-io", "-f", "raw", str(img)], stdin=subprocess.PIPE,
                              stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    try:
        # Once qemu-io answers a command it has opened (and locked) the image.
        holder.stdin.write("help\n")
        holder.stdin.flush()
        assert holder.stdout.readline(), "qemu-io did not start"
        assert_input_error(run([kite, "run", "--kernel", elf, "--disk", f"{img},format=raw"]),
                           "Is another process using the image")
    finally:
        holder.stdin.close()
        holder.wait(timeout=10)


def test_share_is_refused_with_its_reason(kite, tmp_path):
    """kite has no virtio-fs: --share is one clear error (kite create says the same)."""
    elf = tiny_elf(str(tmp_path / "k.elf"))
    assert_input_error(run([kite, "run", "--kernel", elf, "--share", f"{tmp_path},tag=data"]),
                       "--share: shared directories are not supported yet")


def test_the_same_disk_twice_is_refused_by_name(kite, tmp_path):
    """Two spellings of one file: said as such, not as a lock held by 'a running VM'."""
    elf = tiny_elf(str(tmp_path / "k.elf"))
    img = tmp_path / "d.img"
    img.write_bytes(b"\0" * 65536)
    r = run([kite, "run", "--kernel", elf, "--disk", str(img), "--disk",
             f"{tmp_path}/./d.img"])
    assert_input_error(r, "are the same file")
    assert "running VM" not in r.stderr


@pytest.mark.parametrize("spec", ["target=vdc", "cache=none", "serial=S1", "readonly",
                                  "format=raw,target=vdb,readonly=on,cache=writeback,serial=X"])
def test_disk_takes_every_sub_option(kite, tmp_path, spec):
    """kite run and kite create take the same --disk sub-options (target= included); the
    input is fine, so the run gets as far as the kernel, which is not one."""
    junk = tmp_path / "junk.bin"
    junk.write_bytes(b"\0" * 8192)
    img = tmp_path / "d.img"
    img.write_bytes(b"\0" * 65536)
    r = run([kite, "run", "--kernel", str(junk), "--disk", f"{img},{spec}"])
    assert_input_error(r, "not a kernel")


def test_definition_file_is_the_machine(kite, tmp_path):
    """kite run --definition reads a definition as kite dumpjson prints it, through the same
    reader as kite define: its errors name the file and the field."""
    import json
    junk = tmp_path / "junk.bin"
    junk.write_bytes(b"\0" * 8192)
    spec = tmp_path / "vm.json"
    spec.write_text(json.dumps({"name": "vm", "kernel": str(junk), "memory": "64M"}))
    assert_input_error(run([kite, "run", "--definition", str(spec), "--console", "none"]),
                       "--definition", "--kernel")
    assert_input_error(run([kite, "run", "--definition", str(spec)]), "not a kernel")
    spec.write_text(json.dumps({"name": "vm", "kernel": str(junk), "vcpu": 2}))
    assert_input_error(run([kite, "run", "--definition", str(spec)]), str(spec),
                       "unknown field 'vcpu'")
    spec.write_text(json.dumps({"name": "vm", "kernel": str(tmp_path / "nope")}))
    assert_input_error(run([kite, "run", "--definition", str(spec)]), "nope", "No such file")
