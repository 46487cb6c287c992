"""fw_cfg (issue 25): QEMU's firmware configuration interface at I/O ports 0x510/0x511 and its
DMA interface at 0x514. The guest program `fw_cfg` (tests/guests/fw_cfg.c) reads the signature,
the feature bits, the RAM size, the vCPU counts, the file directory and etc/e820, and an unknown
key, through the ports and by DMA, and checks them against the mem= and cpus= the host gives: on
QEMU as the referee, and on kite (marked kvm)."""
import pytest

from test_guest_programs import boot, guest_elf, qemu_argv

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
def test_fw_cfg_qemu(mem, cpus):
    check(boot(qemu_argv("fw_cfg", f"mem={mem} cpus={cpus}", mem=mem, cpus=cpus)))


@pytest.mark.kvm
@pytest.mark.parametrize("mem,cpus", SHAPES)
def test_fw_cfg_kite(kite, mem, cpus):
    r = boot([kite, "run", "--kernel", guest_elf("fw_cfg"), "-m", mem, "-c", str(cpus),
              "--console", "stdio", "--no-reboot", "--append", f"mem={mem} cpus={cpus}"])
    check(r)
    # kite's directory holds etc/e820 alone, as key 0x20; its features: I/O and DMA.
    assert 'fw_cfg: file 0x20 ' in "\n".join(r.lines) and "features 0x3:" in \
        " ".join(r.passed), r.output()
