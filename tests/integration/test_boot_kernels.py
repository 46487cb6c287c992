"""kite run's kernel loading as a user sees it: bzImages kite decompresses itself (and caches), and
the clear errors for bzImages it cannot boot. The Debian kernel tests run when `make guest` has
fetched it (build/guest/vmlinuz); Python's own lzma/gzip modules referee the decompression."""
import gzip
import glob
import lzma
import os
import struct
import subprocess
import time

import pytest

from conftest import ROOT, run

DEBIAN_KERNEL = os.path.join(ROOT, "build", "guest", "vmlinuz")
needs_debian_kernel = pytest.mark.skipif(not os.path.exists(DEBIAN_KERNEL),
                                         reason="build/guest/vmlinuz absent: run make guest")


def assert_input_error(r, *fragments):
    assert r.returncode == 1, (r.returncode, r.stderr)
    assert r.stderr.startswith("kite: error: "), r.stderr
    for frag in fragments:
        assert frag in r.stderr, r.stderr


def payload_of(image):
    """(offset, length) of a bzImage's payload, from its setup header."""
    setup_sects = image[0x1f1] or 4
    off, length = struct.unpack_from("<II", image, 0x248)
    return (setup_sects + 1) * 512 + off, length


def synthetic_bzimage(payload, version=0x20F):
    """A bzImage with one setup sector and protocol `version`, around `payload`."""
    setup = bytearray(1024)
    setup[0x1f1] = 1
    struct.pack_into("<H", setup, 0x1FE, 0xAA55)
    setup[0x200:0x202] = b"\xeb\x6a"
    setup[0x202:0x206] = b"HdrS"
    struct.pack_into("<H", setup, 0x206, version)
    struct.pack_into("<II", setup, 0x248, 0, len(payload))
    return bytes(setup) + payload


def env_with_cache(tmp_path):
    env = dict(os.environ)
    env["XDG_CACHE_HOME"] = str(tmp_path / "cache")
    return env


def test_bzip2_payload_is_not_supported(kite, tmp_path):
    k = tmp_path / "bz2.bzImage"
    k.write_bytes(synthetic_bzimage(b"BZh91AY&SY" + bytes(100) + struct.pack("<I", 4096)))
    assert_input_error(run([kite, "run", "--kernel", str(k)]), "bzip2", "not supported")


def test_payload_that_is_not_an_elf(kite, tmp_path):
    k = tmp_path / "gz.bzImage"
    k.write_bytes(synthetic_bzimage(gzip.compress(b"not a vmlinux " * 100)))
    r = run([kite, "run", "--kernel", str(k)], env=env_with_cache(tmp_path))
    assert_input_error(r, "not an ELF vmlinux")
    assert not glob.glob(str(tmp_path / "cache" / "kite" / "vmlinux-*"))  # nothing cached


def test_old_boot_protocol(kite, tmp_path):
    k = tmp_path / "old.bzImage"
    k.write_bytes(synthetic_bzimage(gzip.compress(b"x" * 100), version=0x207))
    assert_input_error(run([kite, "run", "--kernel", str(k)]), "2.07", "too old")


@needs_debian_kernel
def test_debian_kernel_with_corrupt_payload(kite, tmp_path):
    image = bytearray(open(DEBIAN_KERNEL, "rb").read())
    off, length = payload_of(image)
    mid = off + length // 2
    image[mid:mid + 64] = bytes(b ^ 0x5A for b in image[mid:mid + 64])
    k = tmp_path / "corrupt.bzImage"
    k.write_bytes(bytes(image))
    r = run([kite, "run", "--kernel", str(k), "-m", "256M"], env=env_with_cache(tmp_path))
    assert_input_error(r, str(k), "corrupt xz payload")


@needs_debian_kernel
def test_debian_kernel_truncated(kite, tmp_path):
    image = open(DEBIAN_KERNEL, "rb").read()
    k = tmp_path / "cut.bzImage"
    k.write_bytes(image[:len(image) // 2])
    assert_input_error(run([kite, "run", "--kernel", str(k)]), "beyond the end of the file")


@needs_debian_kernel
def test_debian_kernel_is_decompressed_and_cached(kite, tmp_path):
    """kite gets past loading the real kernel (on a host without /dev/kvm it then stops at
    /dev/kvm), and its cache holds exactly the payload Python's lzma decompresses."""
    image = open(DEBIAN_KERNEL, "rb").read()
    off, length = payload_of(image)
    payload = image[off:off + length]
    want = lzma.LZMADecompressor().decompress(payload)
    assert want[:4] == b"\x7fELF"
    argv = [kite, "run", "--kernel", DEBIAN_KERNEL, "-m", "256M", "--console", "none",
            "--no-reboot"]
    p = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                         stderr=subprocess.PIPE, env=env_with_cache(tmp_path), text=True)
    pattern = str(tmp_path / "cache" / "kite" / "vmlinux-*")
    have_kvm = os.path.exists("/dev/kvm")
    deadline = time.monotonic() + 120
    while p.poll() is None and time.monotonic() < deadline:
        if have_kvm and glob.glob(pattern):
            break  # the guest is starting; loading is what this test checks
        time.sleep(0.1)
    if p.poll() is None:
        p.kill()
    err = p.communicate()[1]
    if not have_kvm:
        assert p.returncode == 1 and "/dev/kvm" in err, err
    assert "not a kernel" not in err and "corrupt" not in err, err
    cached = glob.glob(pattern)
    assert len(cached) == 1, (cached, err)
    assert open(cached[0], "rb").read() == want
