"""CPUID shaping (issue 25): kite run --cpu host|max|base[,+FEAT,-FEAT], as QEMU's -cpu. The
guest program `cpuid` (tests/guests/cpuid.c) executes CPUID in ring 0, prints the vendor and a
table of features, and checks on=/off= lists against them; QEMU under TCG (-cpu max,-avx,...)
referees the same removals. Option refusals and the machine definition's field run anywhere."""
import json
import re

import pytest

from conftest import run
from test_guest_programs import boot, guest_elf, qemu_argv
from test_machines import Machines

# Features QEMU's TCG and any KVM host both have, removed on both; and ones left on.
REMOVED = ["avx", "sse4.2", "popcnt"]
KEPT = ["sse2", "sse4.1", "lm", "hypervisor"]
APPEND = f"on={','.join(KEPT)} off={','.join(REMOVED)}"
CPU_RE = re.compile(r"^cpuid: ([a-z0-9.-]+)=([01])$")


def features(r):
    return {m.group(1): m.group(2) == "1" for m in map(CPU_RE.match, r.lines) if m}


def host_flags():
    with open("/proc/cpuinfo") as f:
        for line in f:
            if line.startswith("flags"):
                return set(line.split(":", 1)[1].split())
    return set()


def host_vendor():
    with open("/proc/cpuinfo") as f:
        for line in f:
            if line.startswith("vendor_id"):
                return line.split(":", 1)[1].strip()
    return ""


def kite_cpu(kite, cpu, append):
    argv = [kite, "run", "--kernel", guest_elf("cpuid"), "-m", "64M", "--console", "stdio",
            "--no-reboot", "--append", append]
    return boot(argv + (["--cpu", cpu] if cpu else []))


def test_removed_features_qemu():
    r = boot(qemu_argv("cpuid", APPEND, extra=["-cpu", "max," + ",".join(
        "-" + f for f in REMOVED)]))
    r.assert_all_passed([f"{f} is off" for f in REMOVED] + [f"{f} is on" for f in KEPT] +
                        ["leaf 0xd offers YMM state exactly when avx is on"])


@pytest.mark.kvm
def test_removed_features_kite(kite):
    """The same removals as QEMU's; the vendor is the host's, and leaf 0xd drops the YMM
    state with avx. `max,avx=off,-sse4_2`: QEMU's other spellings."""
    r = kite_cpu(kite, "max,avx=off,-sse4_2,-popcnt", APPEND)
    r.assert_all_passed([f"{f} is off" for f in REMOVED] + [f"{f} is on" for f in KEPT] +
                        ["leaf 0xd offers YMM state exactly when avx is on"])
    assert f"cpuid: vendor {host_vendor()}" in r.lines, r.output()


@pytest.mark.kvm
def test_base_model_plus_a_feature_kite(kite):
    """base: x86-64-v2 with x2apic and hypervisor, nothing of leaf 7; +F adds back one the host
    has; -x2apic removes one of the base's."""
    have = host_flags()
    extra = next((q for q, linux in [("aes", "aes"), ("rdrand", "rdrand"), ("movbe", "movbe"),
                                     ("rdtscp", "rdtscp")] if linux in have), None)
    assert extra, f"the host has none of aes, rdrand, movbe, rdtscp: {sorted(have)}"
    on = ["sse3", "ssse3", "sse4.1", "sse4.2", "popcnt", "cx16", "lahf-lm", "lm", "nx",
          "syscall", "hypervisor", extra]
    off = ["avx", "avx2", "xsave", "smep", "smap", "bmi1", "fsgsbase", "erms", "pcid",
           "pdpe1gb", "x2apic"]
    r = kite_cpu(kite, f"base,+{extra},-x2apic", f"on={','.join(on)} off={','.join(off)}")
    r.assert_all_passed([f"{f} is on" for f in on] + [f"{f} is off" for f in off])
    got = features(r)
    leaf7 = ["fsgsbase", "bmi1", "avx2", "smep", "bmi2", "erms", "invpcid", "avx512f",
             "rdseed", "adx", "smap", "clflushopt", "sha-ni", "umip", "pku", "rdpid"]
    assert not any(got[f] for f in leaf7), r.output()


@pytest.mark.kvm
def test_a_feature_kvm_cannot_give_is_refused_kite(kite):
    missing = next((f for f in ["avx512f", "avx512dq", "sha-ni", "avx512vl"]
                    if f.replace("-", "_") not in host_flags()), None)
    assert missing, "the host has every AVX-512 feature tried"
    r = run([kite, "run", "--kernel", guest_elf("cpuid"), "-m", "64M", "--cpu",
             f"max,+{missing}"])
    assert r.returncode == 1, r.stderr
    assert f"kite: error: --cpu: +{missing}: this host's KVM cannot give it" in r.stderr, \
        r.stderr


@pytest.mark.parametrize("value,message", [
    ("max,+avx9", "unknown CPU feature 'avx9'"),
    ("pentium", "'pentium' is not a CPU model: host, max or base"),
    ("max,avx", "'avx' is not +FEATURE, -FEATURE or FEATURE=on|off"),
    ("max,avx=maybe", "'avx=maybe': a feature is on or off"),
    ("", "'' is not a CPU model"),
])
def test_bad_cpu_values_are_refused(kite, value, message):
    r = run([kite, "run", "--kernel", guest_elf("cpuid"), "--cpu", value])
    assert r.returncode == 1, r.stderr
    assert r.stderr.startswith(f"kite: error: --cpu: {message}"), r.stderr


def test_a_definition_keeps_the_cpu_model(kite):
    """kite create stores the model in QEMU's canonical names, a feature named twice by its
    last word; a machine with the default model has no field."""
    m = Machines(kite)
    try:
        m.create("cpu1", "--cpu", "base,avx=on,-sse4_1,pni=off,+sse4.1")
        assert json.loads(m.ok("dumpjson", "cpu1").stdout)["cpu"] == "base,+avx,-sse3,+sse4.1"
        m.create("cpu2")
        assert "cpu" not in json.loads(m.ok("dumpjson", "cpu2").stdout)
    finally:
        m.cleanup()
