"""Shared fixtures: the kite binaries under test and helpers to run them."""
import os
import subprocess

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
BUILDS = {
    "release": os.environ.get("KITE", os.path.join(ROOT, "build", "kite")),
    "asan": os.environ.get("KITE_SAN", os.path.join(ROOT, "build", "san", "kite")),
}


@pytest.fixture(params=sorted(BUILDS), scope="session")
def kite(request):
    """Path of a kite binary; every test using it runs on the release and the ASan+UBSan build."""
    path = BUILDS[request.param]
    if not os.access(path, os.X_OK):
        pytest.fail(f"{path} is missing: run make first")
    return path


def run(argv, **kw):
    """Runs a command, returning CompletedProcess with text output."""
    kw.setdefault("capture_output", True)
    kw.setdefault("text", True)
    kw.setdefault("timeout", 120)
    env = dict(os.environ)
    env.setdefault("ASAN_OPTIONS", "detect_leaks=1:abort_on_error=0")
    env.setdefault("UBSAN_OPTIONS", "print_stacktrace=1:halt_on_error=1")
    kw.setdefault("env", env)
    return subprocess.run(argv, **kw)


HAVE_KVM = os.path.exists("/dev/kvm")
# kite's own test for a KVM-PVM host (src/kvm/kvm.c, kvm_host_probe), and what it then appends
# to a Linux kernel's command line (src/kvm/pvm.h, PVM_LINUX_CMDLINE).
def _cpu_has_vmx_or_svm():
    with open("/proc/cpuinfo") as f:
        flags = next((line for line in f if line.startswith("flags")), "").split()
    return "vmx" in flags or "svm" in flags


PVM_HOST = os.path.exists("/sys/module/kvm_pvm") and not _cpu_has_vmx_or_svm()
PVM_LINUX_CMDLINE = "noxsave nokaslr clearcpuid=308,295,151"


def linux_cmdline(append):
    """The command line a Linux kernel booted by `kite run --append APPEND` receives here: the
    user's, plus the PVM defaults on a KVM-PVM host (README "KVM-PVM hosts")."""
    return f"{append} {PVM_LINUX_CMDLINE}" if PVM_HOST else append


def pytest_configure(config):
    config.addinivalue_line(
        "markers", "kvm: boots a guest under KVM. Where there is no /dev/kvm these skip here and "
        "`make check` runs them inside a KVM host VM (scripts/run-in-kvm-host).")


def pytest_collection_modifyitems(config, items):
    if HAVE_KVM:
        return
    skip = pytest.mark.skip(reason="no /dev/kvm on this host (make check runs these in "
                            "scripts/run-in-kvm-host)")
    for item in items:
        if "kvm" in item.keywords:
            item.add_marker(skip)
