"""Machine verbs (kite define/start/list/...) end to end. The VMM is `kite _fake-run`
(KITE_RUNNER), a stand-in that speaks the control protocol, so these run without /dev/kvm;
the tests at the end boot real guests with `kite run` where /dev/kvm exists."""
import json
import os
import re
import shutil
import signal
import socket
import struct
import subprocess
import tempfile
import threading
import time
import zlib

import pytest

from conftest import ROOT, run
from savefile_format import build_record, join_save, set_field, split_save

HAVE_KVM = os.path.exists("/dev/kvm")


class Machines:
    """A private state directory and the environment that points kite at it."""

    def __init__(self, kite):
        self.kite = kite
        # Short: unix socket paths are limited to 107 bytes. TMPDIR, not /tmp: in the KVM host
        # VM /tmp is the host's over 9p, where a unix socket cannot be bound.
        self.dir = tempfile.mkdtemp(prefix="km", dir=tempfile.gettempdir())
        self.state = os.path.join(self.dir, "state")
        self.run_dir = os.path.join(self.state, "run")
        self.kernel = os.path.join(self.dir, "vmlinuz")
        with open(self.kernel, "wb") as f:
            f.write(b"not really a kernel: the fake runner only checks it can be read")
        self.env = dict(os.environ)
        self.env.pop("KITE_RUNTIME_DIR", None)
        self.env["KITE_STATE_DIR"] = self.state
        # kite start's wait for the VMM to answer: a hang detector here, not 30 s (the KVM
        # host VM's software CPU, shared with the host pass, can take longer to boot a VMM).
        self.env["KITE_START_TIMEOUT"] = "600"
        self.env["KITE_RUNNER"] = f"{kite} _fake-run"
        self.env.setdefault("ASAN_OPTIONS", "detect_leaks=1:abort_on_error=0")
        self.env.setdefault("UBSAN_OPTIONS", "print_stacktrace=1:halt_on_error=1")

    def __call__(self, *args, env=None, **kw):
        e = dict(self.env)
        e.update(env or {})
        return run([self.kite, *args], env=e, **kw)

    def ok(self, *args, **kw):
        r = self(*args, **kw)
        assert r.returncode == 0, f"kite {' '.join(args)}: rc={r.returncode}\n{r.stdout}\n{r.stderr}"
        return r

    def create(self, name, *opts, **kw):
        return self.ok("create", name, "--kernel", self.kernel, *opts, **kw)

    def disk(self, name, size=65536):
        """A raw disk image in the test's directory (create checks that disks exist)."""
        path = os.path.join(self.dir, name)
        with open(path, "wb") as f:
            f.truncate(size)
        return path

    def state_of(self, name):
        return self.ok("domstate", name).stdout.strip()

    def pid(self, name):
        with open(os.path.join(self.run_dir, f"{name}.pid")) as f:
            return int(f.read().split()[0])

    def running_pids(self):
        pids = []
        if os.path.isdir(self.run_dir):
            for n in os.listdir(self.run_dir):
                if n.endswith(".pid"):
                    try:
                        with open(os.path.join(self.run_dir, n)) as f:
                            w = f.read().split()
                        pids += [int(w[0]), int(w[2])]
                    except (OSError, ValueError, IndexError):
                        pass
        return pids

    def cleanup(self):
        for pid in self.running_pids():
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        shutil.rmtree(self.dir, ignore_errors=True)


@pytest.fixture
def m(kite):
    machines = Machines(kite)
    yield machines
    machines.cleanup()


# How long a real VM may take to reach a point before the test calls it hung. Under QEMU's
# software CPU on a loaded 2-core machine an ASan boot has taken over 60 s; the waits end as
# soon as the point is reached, so only a hang costs this long.
VM_WAIT = 600


def console_text(m, name, needle, timeout=5):
    """NAME.console (kept by the supervisor) once it holds `needle`, or as it is then."""
    path = os.path.join(m.run_dir, f"{name}.console")
    deadline = time.monotonic() + timeout
    while True:
        text = open(path).read() if os.path.exists(path) else ""
        if needle in text or time.monotonic() > deadline:
            return text
        time.sleep(0.05)


def list_rows(out):
    """Rows of virsh's table: [(id, name, state), ...], checking the header and the rule."""
    lines = out.rstrip("\n").split("\n")
    assert re.match(r"^ Id +Name +State *$", lines[0]), lines[0]
    assert re.match(r"^-+$", lines[1]), lines[1]
    rows = []
    for l in lines[2:]:
        if l.strip():
            parts = re.split(r" {3,}", l.strip())
            rows.append((parts[0], parts[1], parts[2] if len(parts) > 2 else ""))
    return rows


# ---- definitions ----------------------------------------------------------------------------

def test_define_from_json_then_list_dominfo_dumpjson(m, tmp_path):
    web = str(tmp_path / "web.qcow2")
    assert run(["qemu-img", "create", "-q", "-f", "qcow2", web, "16M"]).returncode == 0
    spec = {
        "name": "web",
        "memory": "256M",
        "vcpus": 2,
        "kernel": m.kernel,
        "append": "console=ttyS0",
        "disks": [{"path": web, "format": "qcow2"}],
        "nics": [{"type": "user", "mac": "52:54:00:12:34:56"}],
    }
    f = tmp_path / "web.json"
    f.write_text(json.dumps(spec))
    r = m.ok("define", str(f))
    assert r.stdout == f"Machine 'web' defined from {f}\n"
    rows = list_rows(m.ok("list", "--all").stdout)
    assert rows == [("-", "web", "shut off")]
    # Without --all, shut off machines are not listed.
    assert list_rows(m.ok("list").stdout) == []
    info = m.ok("dominfo", "web").stdout
    fields = dict(re.match(r"^(.+?):\s+(.*)$", l).groups() for l in info.splitlines() if l)
    assert fields["Id"] == "-"
    assert fields["Name"] == "web"
    assert fields["State"] == "shut off"
    assert fields["CPU(s)"] == "2"
    assert fields["Max memory"] == "262144 KiB"
    assert fields["Used memory"] == "262144 KiB"
    assert fields["Autostart"] == "disable"
    assert re.match(r"^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$",
                    fields["UUID"])
    # virsh's layout: the label padded to 15 columns, then a space.
    assert info.splitlines()[1] == "Name:           web"
    dumped = json.loads(m.ok("dumpjson", "web").stdout)
    assert dumped["memory"] == 256 << 20
    assert dumped["disks"] == [{"path": web, "target": "vda", "readonly": False,
                                "format": "qcow2", "cache": "writeback"}]
    assert dumped["uuid"] == fields["UUID"]
    # Defining again without a uuid updates the machine and keeps its UUID.
    spec["vcpus"] = 3
    f.write_text(json.dumps(spec))
    m.ok("define", str(f))
    again = json.loads(m.ok("dumpjson", "web").stdout)
    assert again["vcpus"] == 3 and again["uuid"] == dumped["uuid"]
    # A different UUID for the same name is refused.
    spec["uuid"] = "11111111-2222-4333-8444-555555555555"
    f.write_text(json.dumps(spec))
    r = m("define", str(f))
    assert r.returncode == 1 and "already exists with UUID" in r.stderr


@pytest.mark.parametrize("spec,message", [
    ({"name": ".x", "kernel": "/k"}, "starts with a dot"),
    ({"name": "a/b", "kernel": "/k"}, "is not allowed"),
    ({"name": "x"}, "kernel is required"),
    ({"name": "x", "kernel": "/k", "vcpu": 2}, "unknown field 'vcpu'"),
    ({"name": "x", "kernel": "/k", "memory": "lots"}, "'lots' is not a size"),
    ({"name": "x", "kernel": "/k", "nics": [{"type": "tap"}]}, "needs ifname"),
])
def test_invalid_definitions_are_refused_with_clear_errors(m, tmp_path, spec, message):
    f = tmp_path / "bad.json"
    f.write_text(json.dumps(spec))
    r = m("define", str(f))
    assert r.returncode == 1
    assert r.stderr.startswith("kite: error: ")
    assert message in r.stderr
    assert list_rows(m.ok("list", "--all").stdout) == []


@pytest.mark.parametrize("argv,message", [
    (["list", "--bogus"], "option --bogus is unknown"),
    (["setmem"], "setmem: expected NAME SIZE"),
    (["setmem", "x", "lots", "--config"], "'lots' is not a size"),
    (["start", "a", "b"], "unexpected argument 'b'"),
    (["dominfo", "nosuch"], "no machine named 'nosuch'"),
    (["start", "../etc"], "starts with a dot"),
    (["start", "a/b"], "character '/' is not allowed"),
    (["autostart", "--boot", "x"], "--boot takes no NAME"),
    (["shutdown", "x", "--timeout", "soon"], "--timeout soon: not a number"),
    (["list", "--output=xml"], "expected json or table"),
])
def test_bad_command_lines_are_clear_errors(m, argv, message):
    r = m(*argv)
    assert r.returncode == 1
    assert r.stderr.startswith("kite: error: ")
    assert message in r.stderr


def test_define_rejects_malformed_json(m, tmp_path):
    f = tmp_path / "bad.json"
    f.write_text('{"name": "x", "kernel": ')
    r = m("define", str(f))
    assert r.returncode == 1
    assert "not valid JSON" in r.stderr


def test_create_from_run_options_and_device_lists(m, tmp_path):
    a, c, d = m.disk("a.raw"), m.disk("c.raw"), m.disk("d.raw")
    b = str(tmp_path / "b.qcow2")
    assert run(["qemu-img", "create", "-q", "-f", "qcow2", b, "16M"]).returncode == 0
    r = m.create("db", "-m", "1G", "-c", "2", "--disk", a,
                 "--disk", f"{b},format=qcow2,readonly=on",
                 "--net", "user,mac=52:54:00:00:00:01", "--net", "tap,ifname=tap7",
                 "--append", "quiet")
    assert r.stdout == "Machine 'db' defined\n"
    assert m("create", "db", "--kernel", m.kernel).returncode == 1
    blk = m.ok("domblklist", "db").stdout.splitlines()
    assert re.match(r"^ Target +Source *$", blk[0])
    assert blk[2].split() == ["vda", a]
    assert blk[3].split() == ["vdb", b]
    ifl = m.ok("domiflist", "db").stdout.splitlines()
    assert ifl[0].split() == ["Interface", "Type", "Source", "Model", "MAC"]
    assert ifl[2].split() == ["-", "user", "nat", "virtio", "52:54:00:00:00:01"]
    assert ifl[3].split()[:2] == ["tap7", "tap"]
    disks = json.loads(m.ok("domblklist", "db", "--output=json").stdout)
    assert disks[1] == {"path": b, "target": "vdb", "readonly": True, "format": "qcow2",
                        "cache": "writeback"}
    # --config changes.
    assert m.ok("attach-disk", "db", c, "vdc", "--config").stdout.startswith(
        "Disk attached successfully")
    r = m("attach-disk", "db", d, "vdc", "--config")
    assert r.returncode == 1 and "already used" in r.stderr
    m.ok("detach-disk", "db", "vda", "--config")
    m.ok("attach-interface", "db", "user", "--config", "--mac", "52:54:00:00:00:02")
    m.ok("detach-interface", "db", "tap", "--config")
    m.ok("setvcpus", "db", "4", "--config")
    m.ok("setmaxmem", "db", "2G", "--config")
    m.ok("setmem", "db", "524288", "--config")  # KiB, as virsh
    d = json.loads(m.ok("dumpjson", "db").stdout)
    assert [x["target"] for x in d["disks"]] == ["vdb", "vdc"]
    assert [x["mac"] for x in d["nics"]] == ["52:54:00:00:00:01", "52:54:00:00:00:02"]
    assert d["vcpus"] == 4 and d["memory"] == 2 << 30 and d["current_memory"] == 512 << 20
    r = m("setmem", "db", "3G", "--config")
    assert r.returncode == 1 and "more than the machine's maximum memory" in r.stderr
    r = m("undefine", "db")
    assert r.returncode == 0 and r.stdout == "Machine 'db' has been undefined\n"
    assert m("dominfo", "db").returncode == 1


def test_nics_take_kite_run_syntax_and_port_forwards(m):
    m.create("fw", "--net", "user,hostfwd=tcp::2222-:22,hostfwd=udp:127.0.0.1:5353-:53",
             "--net", "tap=tap9,mac=52:54:00:00:00:09")
    nics = json.loads(m.ok("dumpjson", "fw").stdout)["nics"]
    assert nics[0]["hostfwd"] == ["tcp::2222-:22", "udp:127.0.0.1:5353-:53"]
    assert nics[1]["type"] == "tap" and nics[1]["ifname"] == "tap9"
    r = m("create", "fw2", "--kernel", m.kernel, "--net", "user,hostfwd=tcp:nonsense")
    assert r.returncode == 1 and r.stderr.startswith("kite: error: ")
    r = m("create", "fw3", "--kernel", m.kernel, "--net", "tap=tap1,hostfwd=tcp::1-:2")
    assert r.returncode == 1 and "hostfwd needs a user" in r.stderr


# ---- one description: create takes what run takes, and what create stores starts ---------

def test_share_is_refused_by_create_as_by_run(m, tmp_path):
    """kite has no virtio-fs: create says so at once instead of storing a machine that every
    start then refuses ('run: unknown option --share')."""
    r = m("create", "sh", "--kernel", m.kernel, "--share", f"{tmp_path},tag=data")
    assert r.returncode == 1
    assert "--share: shared directories are not supported yet" in r.stderr
    f = tmp_path / "sh.json"
    f.write_text(json.dumps({"name": "sh", "kernel": m.kernel,
                             "shares": [{"path": str(tmp_path), "tag": "data"}]}))
    r = m("define", str(f))
    assert r.returncode == 1 and "shares[0]: shared directories are not supported" in r.stderr
    assert list_rows(m.ok("list", "--all").stdout) == []


def test_create_takes_the_disk_sub_options_of_run(m):
    img = m.disk("s.raw")
    m.create("sub", "--disk", f"{img},target=vdc,cache=writeback,serial=SER1,format=raw,readonly")
    disks = json.loads(m.ok("dumpjson", "sub").stdout)["disks"]
    assert disks == [{"path": img, "target": "vdc", "format": "raw", "readonly": True,
                      "cache": "writeback", "serial": "SER1"}]
    m.ok("start", "sub")
    assert m.state_of("sub") == "running"
    m.ok("destroy", "sub")


def test_paths_are_stored_absolute_so_start_works_from_anywhere(m, tmp_path):
    here = tmp_path / "vm"
    here.mkdir()
    (here / "vmlinuz").write_bytes(b"a kernel")
    (here / "d.raw").write_bytes(b"\0" * 65536)
    r = m("create", "rel", "--kernel", "vmlinuz", "--disk", "./d.raw", "--console",
          "file:console.log", cwd=str(here))
    assert r.returncode == 0, r.stderr
    d = json.loads(m.ok("dumpjson", "rel").stdout)
    assert d["kernel"] == str(here / "vmlinuz")
    assert d["disks"][0]["path"] == str(here / "d.raw")
    assert d["console"] == f"file:{here / 'console.log'}"
    m.ok("start", "rel", cwd="/")
    assert m.state_of("rel") == "running"
    m.ok("destroy", "rel")


def test_create_refuses_disks_start_would_refuse(m, tmp_path):
    r = m("create", "nodisk", "--kernel", m.kernel, "--disk", str(tmp_path / "none.img"))
    assert r.returncode == 1
    assert "none.img" in r.stderr and "No such file" in r.stderr
    raw = m.disk("raw.img")
    r = m("create", "fmt", "--kernel", m.kernel, "--disk", f"{raw},format=qcow2")
    assert r.returncode == 1 and "raw.img" in r.stderr
    assert list_rows(m.ok("list", "--all").stdout) == []


def test_a_disk_is_attached_once(m):
    """The same file twice was stored, and start then failed on the image lock with '(a
    running VM?)'."""
    img = m.disk("one.raw")
    r = m("create", "twice", "--kernel", m.kernel, "--disk", img, "--disk", img)
    assert r.returncode == 1 and "already attached" in r.stderr
    other = os.path.join(m.dir, ".", "one.raw")
    r = m("create", "twice", "--kernel", m.kernel, "--disk", img, "--disk", other)
    assert r.returncode == 1 and "are the same file" in r.stderr
    m.create("twice", "--disk", img)
    r = m("attach-disk", "twice", img, "vdb", "--config")
    assert r.returncode == 1 and "already attached" in r.stderr
    link = os.path.join(m.dir, "link.raw")
    os.symlink(img, link)
    r = m("attach-disk", "twice", link, "vdb", "--config")
    assert r.returncode == 1 and "are the same file" in r.stderr
    m.ok("start", "twice")
    m.ok("destroy", "twice")


def test_setvcpus_takes_what_run_takes(m):
    m.create("cpus")
    r = m("setvcpus", "cpus", "255", "--config")
    assert r.returncode == 1 and "'255' is not a number from 1 to 254" in r.stderr
    m.ok("setvcpus", "cpus", "254", "--config")
    assert json.loads(m.ok("dumpjson", "cpus").stdout)["vcpus"] == 254
    m.ok("start", "cpus")
    m.ok("destroy", "cpus")


def test_memory_units_are_said_and_suffixes_taken_everywhere(m):
    """setmem reads a bare number as KiB (virsh), kite run -m as MiB: each help says which."""
    assert "a bare number is MiB" in m.ok("run", "--help").stdout
    assert "a bare number is MiB" in m.ok("create", "--help").stdout
    for verb in ("setmem", "setmaxmem"):
        text = " ".join(m.ok(verb, "--help").stdout.split())
        assert "is in KiB" in text and "512M" in text
    assert "kite run -m and kite create -m take MiB" in " ".join(
        m.ok("setmem", "--help").stdout.split())
    m.create("mem", "-m", "1GiB")
    m.ok("setmaxmem", "mem", "2G", "--config")
    m.ok("setmem", "mem", "256M", "--config")
    assert json.loads(m.ok("dumpjson", "mem").stdout)["current_memory"] == 256 << 20
    m.ok("setmem", "mem", "131072", "--config")  # KiB
    d = json.loads(m.ok("dumpjson", "mem").stdout)
    assert d["current_memory"] == 128 << 20 and d["memory"] == 2 << 30


def random_machine_options(rnd, m, i, real=False):
    """kite create options for a random valid machine: every option and sub-option kite run
    takes, in random combinations. `real`: one a real VMM here can boot (small, no taps)."""
    if real:
        opts = ["-m", rnd.choice(["64M", "96", "65536K"]), "-c", str(rnd.randint(1, 2))]
    else:
        opts = ["-m", rnd.choice(["64M", "1G", "96", "131072K", "2GiB"]),
                "-c", str(rnd.randint(1, 254))]
    if rnd.random() < 0.5:
        opts += ["--append", rnd.choice(["console=ttyS0", "quiet a,b=c", "x=\"y z\""])]
    targets = rnd.sample(["vdb", "vdc", "vdd", "vde", "vdf"], 3)
    for k in range(rnd.randint(0, 3)):
        spec = m.disk(f"m{i}d{k},x.raw").replace(",", ",,")
        for key, values in (("format", ["raw"]), ("target", [targets[k]]),
                            ("readonly", ["on", "off"]), ("cache", ["writeback"]),
                            ("serial", [f"S{i}-{k}", "ABCDEFGHIJKLMNOPQRST"])):
            if rnd.random() < 0.5:
                spec += f",{key}={rnd.choice(values)}"
        opts += ["--disk", spec]
    for k in range(rnd.randint(0, 3)):
        if real or rnd.random() < 0.6:
            spec = "user"
            for _ in range(rnd.randint(0, 2)):
                proto = rnd.choice(["tcp", "udp"])
                host = rnd.choice(["", "127.0.0.1"])
                spec += f",hostfwd={proto}:{host}:{rnd.randint(1024, 65535)}-:{rnd.randint(1, 65535)}"
        else:
            spec = rnd.choice([f"tap=tap{k}", f"tap,ifname=kt{i}x{k}"])
        if rnd.random() < 0.5:
            spec += f",mac=52:54:00:00:{i:02x}:{k:02x}"
        opts += ["--net", spec]
    opts += ["--console", rnd.choice(["serial", "stdio", "virtio", "none",
                                      f"file:{m.dir}/c{i}.log"])]
    for flag in ("--rng", "--balloon"):
        choice = rnd.choice(["", "=on", "=off", None])
        if choice is not None:
            opts.append(flag + choice)
    return opts


def test_every_machine_create_accepts_round_trips_and_starts(m):
    """Random machines, over every option: what create stores is what define reads back, and
    the VMM (the stand-in here, parsing with kite run's own parser) starts it."""
    import random
    rnd = random.Random(15)
    for i in range(12):
        opts = random_machine_options(rnd, m, i)
        name = f"p{i}"
        m.create(name, *opts)
        stored = json.loads(m.ok("dumpjson", name).stdout)
        again = dict(stored, name=f"q{i}")
        del again["uuid"]
        spec = os.path.join(m.dir, f"q{i}.json")
        with open(spec, "w") as f:
            json.dump(again, f)
        m.ok("define", spec)
        copy = json.loads(m.ok("dumpjson", f"q{i}").stdout)
        assert dict(copy, name=name, uuid=stored["uuid"]) == stored, opts
        m.ok("undefine", f"q{i}")
        r = m("start", name)
        assert r.returncode == 0, (opts, r.stderr)
        assert m.state_of(name) == "running", opts
        m.ok("destroy", name)
        m.ok("undefine", name)


def runner_argv(m, name, tmp_path):
    """The VMM command line `kite start` builds, captured by a stand-in runner."""
    out = tmp_path / "argv"
    script = tmp_path / "argv.sh"
    script.write_text(f"#!/bin/sh\nfor a in \"$@\"; do printf '%s\\n' \"$a\"; done > {out}\n"
                      "echo 'kite: error: captured' >&2\nexit 1\n")
    script.chmod(0o755)
    r = m("start", name, env={"KITE_RUNNER": str(script)})
    assert r.returncode == 1 and "captured" in r.stderr
    return out.read_text().splitlines()


def test_start_gives_up_on_a_vmm_that_never_answers(m, tmp_path):
    """KITE_START_TIMEOUT bounds kite start's wait for the control socket; the silent VMM is
    stopped and the machine left shut off."""
    m.create("mute")
    script = tmp_path / "mute.sh"
    script.write_text("#!/bin/sh\nexec sleep 600\n")
    script.chmod(0o755)
    r = m("start", "mute", env={"KITE_RUNNER": str(script), "KITE_START_TIMEOUT": "1"})
    assert r.returncode == 1, r.stderr
    assert "machine mute did not answer on" in r.stderr and "within 1 s: stopping it" in r.stderr
    assert m.state_of("mute") == "shut off"


def test_start_passes_the_definition_itself(m, tmp_path):
    """The VMM gets the definition, not a command line rebuilt from it."""
    a, b = m.disk("a.qcow2"), m.disk("b,x.raw")
    m.create("args", "-m", "96M", "-c", "3", "--append", "console=ttyS0 quiet",
             "--disk", f"{b.replace(',', ',,')},target=vdb,readonly=on,serial=B",
             "--disk", f"{a},cache=none",
             "--net", "user,mac=52:54:00:00:00:05,hostfwd=tcp::2222-:22", "--rng")
    argv = runner_argv(m, "args", tmp_path)
    definition = os.path.join(m.run_dir, "args.json")
    assert argv == ["--definition", definition, "--control-socket",
                    os.path.join(m.run_dir, "args.sock"), "--detached"]
    assert json.load(open(definition)) == json.loads(m.ok("dumpjson", "args").stdout)


def test_kite_run_accepts_the_definition_start_passes(m, tmp_path):
    """Checked without booting: a kernel that is not one fails after the definition was read
    and its disks checked."""
    img = m.disk("d.raw")
    m.create("acc", "--disk", img, "--net", "user,hostfwd=tcp::2222-:22")
    argv = runner_argv(m, "acc", tmp_path)
    r = run([m.kite, "run", *argv], timeout=60)
    assert r.returncode == 1
    assert "not a kernel" in r.stderr, r.stderr


def test_concurrent_changes_are_all_kept(m):
    """Each change is load-modify-save under the machine's lock: none is lost."""
    m.create("busy")
    targets = [f"vd{c}" for c in "bcdefghijk"]
    procs = [subprocess.Popen([m.kite, "attach-disk", "busy", m.disk(f"{t}.raw"), t, "--config"],
                              env=m.env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
             for t in targets]
    for p in procs:
        assert p.wait(timeout=60) == 0, p.stderr.read()
        p.stderr.close()
    disks = json.loads(m.ok("dumpjson", "busy").stdout)["disks"]
    assert sorted(d["target"] for d in disks) == targets
    assert not [f for f in os.listdir(m.state) if ".tmp." in f]


def test_undefine_remove_all_storage(m, tmp_path):
    img = tmp_path / "disk.raw"
    img.write_bytes(b"\0" * 4096)
    m.create("st", "--disk", str(img))
    m.ok("undefine", "st", "--remove-all-storage")
    assert not img.exists()


def test_edit_validates_before_replacing(m, tmp_path):
    m.create("ed")
    before = m.ok("dumpjson", "ed").stdout
    editor = tmp_path / "ed.sh"
    editor.write_text("#!/bin/sh\nsed -i 's/\"vcpus\": 1/\"vcpus\": 3/' \"$1\"\n")
    editor.chmod(0o755)
    r = m.ok("edit", "ed", env={"EDITOR": str(editor)})
    assert "edited" in r.stdout
    assert json.loads(m.ok("dumpjson", "ed").stdout)["vcpus"] == 3
    # An edit that breaks the JSON, or the rules, leaves the definition as it was.
    for script in ("echo '{\"name\": ' > \"$1\"\n",
                   "sed -i 's/\"vcpus\": 3/\"vcpus\": 0/' \"$1\"\n",
                   "sed -i 's/\"name\": \"ed\"/\"name\": \"other\"/' \"$1\"\n"):
        editor.write_text("#!/bin/sh\n" + script)
        good = m.ok("dumpjson", "ed").stdout
        r = m("edit", "ed", env={"EDITOR": str(editor)})
        assert r.returncode == 1, r.stdout
        assert m.ok("dumpjson", "ed").stdout == good
    assert before != good


def test_truncated_definition_is_reported_never_replaced(m, tmp_path):
    m.create("ok1")
    m.create("broken", "-c", "2")
    path = os.path.join(m.state, "broken.json")
    data = open(path, "rb").read()
    with open(path, "wb") as f:
        f.write(data[: len(data) // 2])
    r = m.ok("list", "--all")
    assert ("-", "broken", "corrupt") in list_rows(r.stdout)
    assert ("-", "ok1", "shut off") in list_rows(r.stdout)
    assert "definition of broken is corrupt: truncated" in r.stderr
    # Even the default listing says so on stderr.
    assert "broken is corrupt" in m.ok("list").stderr
    r = m("dominfo", "broken")
    assert r.returncode == 1 and "is corrupt" in r.stderr and "truncated" in r.stderr
    j = json.loads(m.ok("list", "--all", "--output=json").stdout)
    assert [x["name"] for x in j] == ["broken", "ok1"]
    assert "truncated" in j[0]["corrupt"]
    # Not silently replaced: define and create refuse, the file stays as it is.
    spec = tmp_path / "b.json"
    spec.write_text(json.dumps({"name": "broken", "kernel": m.kernel}))
    r = m("define", str(spec))
    assert r.returncode == 1 and "corrupt" in r.stderr
    assert open(path, "rb").read() == data[: len(data) // 2]
    r = m("start", "broken")
    assert r.returncode == 1 and "corrupt" in r.stderr
    m.ok("undefine", "broken")
    assert [x[1] for x in list_rows(m.ok("list", "--all").stdout)] == ["ok1"]


def test_hand_edited_invalid_definition_is_reported_with_its_reason(m):
    m.create("hand")
    path = os.path.join(m.state, "hand.json")
    d = json.load(open(path))
    d["vcpus"] = 0
    with open(path, "w") as f:
        json.dump(d, f)
    r = m.ok("list", "--all")
    assert ("-", "hand", "corrupt") in list_rows(r.stdout)
    assert "definition of hand is corrupt: vcpus: '0' is not a number from 1 to 254" in r.stderr
    r = m("dominfo", "hand")
    assert r.returncode == 1 and "vcpus: '0' is not a number from 1 to 254" in r.stderr


# ---- lifecycle with the fake runner ---------------------------------------------------------

def test_state_transitions(m):
    m.create("vm1")
    r = m.ok("start", "vm1")
    assert r.stdout == "Machine 'vm1' started\n"
    assert m.state_of("vm1") == "running"
    rows = list_rows(m.ok("list").stdout)
    assert rows == [(str(m.pid("vm1")), "vm1", "running")]
    r = m("start", "vm1")
    assert r.returncode == 1 and "already running" in r.stderr
    m.ok("suspend", "vm1")
    assert m.state_of("vm1") == "paused"
    assert [x[1] for x in list_rows(m.ok("list", "--state-paused").stdout)] == ["vm1"]
    assert list_rows(m.ok("list", "--state-running").stdout) == []
    m.ok("resume", "vm1")
    assert m.state_of("vm1") == "running"
    m.ok("reboot", "vm1")
    assert m.state_of("vm1") == "running"
    r = m.ok("shutdown", "vm1", "--timeout", "10")
    assert "shut off" in r.stdout
    assert m.state_of("vm1") == "shut off"
    assert m.ok("domstate", "vm1", "--reason").stdout.strip() == "shut off (shutdown)"
    assert [x[1] for x in list_rows(m.ok("list", "--state-shutoff").stdout)] == ["vm1"]
    assert not os.path.exists(os.path.join(m.run_dir, "vm1.sock"))
    # And up again.
    m.ok("start", "vm1")
    j = json.loads(m.ok("list", "--output=json").stdout)
    assert j[0]["name"] == "vm1" and j[0]["state"] == "running" and j[0]["id"] == m.pid("vm1")
    m.ok("destroy", "vm1")


def save_file_parts(path):
    """A save file's magic, header record, header CRC and the rest (src/machine/savefile.h)."""
    data = open(path, "rb").read()
    hlen = int.from_bytes(data[8:12], "little")
    return data[:12], data[12:12 + hlen], data[12 + hlen:16 + hlen], data[16 + hlen:]


def test_save_restore_managedsave_verbs(m, tmp_path):
    """virsh's verbs with the fake runner, whose save writes a real save file (no device
    state, RAM all holes): the file, the states and reasons, start resuming a managed save."""
    m.create("sv", "-m", "64M")
    r = m("save", "sv", str(tmp_path / "x.save"))
    assert r.returncode == 1 and "machine sv is not running" in r.stderr, r.stderr
    m.ok("start", "sv")
    save = tmp_path / "sv.save"
    r = m.ok("save", "sv", str(save))
    assert r.stdout == f"Machine 'sv' saved to {save}\n"
    assert m.ok("domstate", "sv", "--reason").stdout.strip() == "shut off (saved)"
    st = os.stat(save)
    assert st.st_size > 64 << 20 and st.st_blocks * 512 < (1 << 20), st  # RAM: holes
    magic, header, _, _ = save_file_parts(save)
    assert magic[:8] == b"KITESAVE" and b"savefile" in header and b'"name":"sv"' in header
    r = m.ok("restore", str(save))
    assert r.stdout == f"Machine 'sv' restored from {save}\n"
    assert m.state_of("sv") == "running"
    assert "fake guest sv restored" in console_text(m, "sv", "restored")
    r = m("restore", str(save))
    assert r.returncode == 1 and "already running" in r.stderr
    # managedsave: kept in the state directory until the next start resumes it.
    r = m.ok("managedsave", "sv")
    assert r.stdout == "Machine 'sv' state saved by kite\n"
    assert os.path.exists(os.path.join(m.state, "sv.save"))
    assert re.search(r"Managed save: +yes", m.ok("dominfo", "sv").stdout)
    assert m.ok("domstate", "sv", "--reason").stdout.strip() == "shut off (saved)"
    m.ok("start", "sv")
    assert "fake guest sv restored" in console_text(m, "sv", "restored")
    assert not os.path.exists(os.path.join(m.state, "sv.save"))
    assert re.search(r"Managed save: +no", m.ok("dominfo", "sv").stdout)
    m.ok("managedsave", "sv")
    r = m("undefine", "sv")
    assert r.returncode == 1 and "'kite undefine sv --managed-save'" in r.stderr, r.stderr
    r = m.ok("managedsave-remove", "sv")
    assert r.stdout == "Removed managedsave image for machine 'sv'\n"
    r = m.ok("managedsave-remove", "sv")
    assert "no managed save image" in r.stdout
    m.ok("start", "sv")
    assert "fake guest sv booted" in console_text(m, "sv", "booted")
    m.ok("managedsave", "sv")
    m.ok("undefine", "sv", "--managed-save")
    assert not os.path.exists(os.path.join(m.state, "sv.save"))


def test_restore_defines_a_machine_it_does_not_know(m, tmp_path):
    m.create("gone", "-m", "32M")
    m.ok("start", "gone")
    save = tmp_path / "gone.save"
    m.ok("save", "gone", str(save))
    m.ok("undefine", "gone")
    r = m.ok("restore", str(save))
    assert "Machine 'gone' defined from" in r.stdout and "restored from" in r.stdout
    assert m.state_of("gone") == "running"
    m.ok("destroy", "gone")


def hostile_save_files(save, tmp_path):
    """(file, what the error must say) for each way a save file can be bad."""
    magic, header, hcrc, rest = save_file_parts(save)
    data = open(save, "rb").read()
    out = []

    def put(name, content, why):
        p = tmp_path / name
        p.write_bytes(content)
        out.append((p, why))

    put("empty.save", b"", "not a kite save file")
    put("foreign.save", b"QFI\xfb" + data[4:4096], "not a kite save file")
    put("short-header.save", data[:40], "cut short or corrupt")
    put("flipped-header.save", magic + header[:20] + bytes([header[20] ^ 1]) + header[21:] +
        hcrc + rest, "corrupt (header checksum)")
    # Version 2 of the format, with a good checksum: refused as another version.
    ver = header.index(b"savefile") + len(b"savefile")
    newer = header[:ver] + (2).to_bytes(4, "little") + header[ver + 4:]
    put("newer.save", magic + newer + zlib.crc32(newer).to_bytes(4, "little") + rest,
        "save file format version 2; this kite reads version 1")
    # A body length past the end of the header, checksum fixed.
    past = header[:ver + 4] + (0x7fffff).to_bytes(4, "little") + header[ver + 8:]
    put("past.save", magic + past + zlib.crc32(past).to_bytes(4, "little") + rest,
        "corrupt")
    put("cut.save", data[:len(data) - 8192], "cut short")
    put("cut-in-state.save", data[:12 + len(header) + 4 + 2], "cut short")
    # Sizes in the header past the end of the file, every checksum right.
    hdr, records, ram = split_save(save)
    u64 = lambda v: struct.pack("<Q", v)  # noqa: E731

    def remade(name, why, fields=(), state=None, keep=()):
        h = [hdr[0], hdr[1], [list(f) for f in hdr[2]]]
        for k, v in fields:
            set_field(h[2], k, v)
        p = tmp_path / name
        join_save(p, h, records, ram, state=state, keep=keep)
        out.append((p, why))

    remade("state-past-end.save", "layout is corrupt",
           [("state_length", u64(len(data)))], keep=("state_length",))
    remade("state-huge.save", "layout is corrupt",
           [("state_length", u64(1 << 63))], keep=("state_length",))
    remade("ram-past-end.save", "cut short", [("ram_size", u64(1 << 40))])
    remade("ram-offset-past-end.save", "cut short",
           [("ram_offset", u64(len(data) + 4096))], keep=("ram_offset",))
    remade("ram-wraps.save", "layout is corrupt",
           [("ram_offset", u64(1 << 63)), ("ram_size", u64(1 << 63))], keep=("ram_offset",))
    remade("ram-smaller.save", "the definition has 32768 KiB of memory, the file 4 KiB",
           [("ram_size", u64(4096))])
    remade("ram-size-short.save", "the save file's header is corrupt",
           [("ram_size", b"\0" * 4)])
    remade("definition-bad.save", "not valid JSON", [("definition", b"{\"name\": ")])
    # State records whose lengths run past the end of the state, checksums right.
    rec = build_record("serial", 1, [["rx_fifo", 5, b"abc"]])
    remade("record-past-end.save", "state is corrupt",
           state=build_record("serial", 1, [["rx_fifo", 5, b"abc"]], body_len=1 << 20))
    remade("field-past-end.save", "state is corrupt",
           state=rec[:-7] + struct.pack("<I", 1 << 30) + b"abc")
    remade("record-cut.save", "state is corrupt", state=rec[:-1])
    return out


def test_hostile_save_files_are_refused_before_anything_runs(m, tmp_path):
    m.create("hs", "-m", "32M")
    m.ok("start", "hs")
    save = tmp_path / "hs.save"
    m.ok("save", "hs", str(save))
    for path, why in hostile_save_files(save, tmp_path):
        for argv in (["restore", str(path)], ["_fake-run", "--restore", str(path),
                                              "--control-socket", str(tmp_path / "x.sock")]):
            r = m(*argv)
            assert r.returncode == 1, (path, r.stdout, r.stderr)
            # One error, as the user sees it (an ASan or UBSan report would come here too).
            assert r.stderr.startswith("kite: error: "), (path, r.stderr)
            assert "Sanitizer" not in r.stderr and "runtime error" not in r.stderr, r.stderr
            assert why in r.stderr, (path, r.stderr)
            assert "booted" not in r.stdout + r.stderr and "restored" not in r.stderr
        assert m.state_of("hs") == "shut off"
    # The real VMM checks the file before it touches KVM: the same errors with no /dev/kvm.
    path, why = hostile_save_files(save, tmp_path)[3]
    r = m("run", "--restore", str(path))
    assert r.returncode == 1 and why in r.stderr, r.stderr
    # A managed save that is damaged stops the start with a way out.
    shutil.copy(tmp_path / "cut.save", os.path.join(m.state, "hs.save"))
    r = m("start", "hs")
    assert r.returncode == 1 and "managedsave-remove hs" in r.stderr, r.stderr
    m.ok("managedsave-remove", "hs")
    m.ok("start", "hs")
    m.ok("destroy", "hs")


def test_list_orders_running_first_as_virsh(m):
    for n in ("a", "b", "c"):
        m.create(n)
    m.ok("start", "c")
    m.ok("start", "b")
    rows = list_rows(m.ok("list", "--all").stdout)
    running = sorted([("b", m.pid("b")), ("c", m.pid("c"))], key=lambda x: x[1])
    assert [r[1] for r in rows] == [running[0][0], running[1][0], "a"]
    assert m.ok("list", "--all", "--name").stdout.split() == [running[0][0], running[1][0], "a"]


def test_machines_by_id_or_uuid_as_virsh(m):
    m.create("byid")
    uuid = json.loads(m.ok("dumpjson", "byid").stdout)["uuid"]
    assert m.ok("domstate", uuid).stdout.strip() == "shut off"
    m.ok("start", uuid.upper())
    pid = str(m.pid("byid"))
    assert "Name:           byid" in m.ok("dominfo", pid).stdout
    m.ok("suspend", pid)
    assert m.state_of("byid") == "paused"
    assert m.ok("domname", pid).stdout.strip() == "byid"
    assert m.ok("domname", uuid).stdout.strip() == "byid"
    assert m.ok("domuuid", pid).stdout.strip() == uuid
    assert m.ok("domid", "byid").stdout.strip() == pid
    m.ok("destroy", pid)
    assert m.ok("domid", "byid").stdout.strip() == "-"
    r = m("dominfo", "424242")
    assert r.returncode == 1 and "no machine named '424242'" in r.stderr


def test_destroy_ends_the_vm(m):
    m.create("d1")
    m.ok("start", "d1")
    pid = m.pid("d1")
    destroy(m, "d1")
    assert vm_gone(pid)
    assert m.state_of("d1") == "shut off"  # destroyed is not crashed
    assert m.ok("domstate", "d1", "--reason").stdout.strip() == "shut off (destroyed)"
    r = m("destroy", "d1")
    assert r.returncode == 1 and "not running" in r.stderr


def test_destroy_kills_a_vmm_that_ignores_quit(m):
    m.create("hung")
    m.ok("start", "hung")
    pid = m.pid("hung")
    os.kill(pid, signal.SIGSTOP)  # a VMM that answers nothing
    destroy(m, "hung")
    assert m.state_of("hung") == "shut off"


def test_kill_9_shows_crashed_and_restart_works(m):
    m.create("c1")
    m.create("bystander")
    m.ok("start", "c1")
    m.ok("start", "bystander")
    os.kill(m.pid("c1"), signal.SIGKILL)
    deadline = time.monotonic() + 5
    while m.state_of("c1") != "crashed" and time.monotonic() < deadline:
        time.sleep(0.05)
    rows = list_rows(m.ok("list", "--all").stdout)
    assert ("-", "c1", "crashed") in rows
    # The other machine is unaffected.
    assert any(r[1] == "bystander" and r[2] == "running" for r in rows)
    assert "killed by signal 9" in m.ok("domstate", "c1", "--reason").stdout
    assert "killed by signal 9" in m.ok("dominfo", "c1").stdout
    j = json.loads(m.ok("list", "--all", "--output=json").stdout)
    assert "killed by signal 9" in [x for x in j if x["name"] == "c1"][0]["reason"]
    assert [x[1] for x in list_rows(m.ok("list", "--state-other").stdout)] == ["c1"]
    # The reason comes from the machine's log, where the supervisor wrote it.
    log = open(os.path.join(m.run_dir, "c1.log")).read()
    assert "crashed: VM process killed by signal 9" in log
    m.ok("start", "c1")
    assert m.state_of("c1") == "running"


def test_console_output_is_kept_after_a_crash(m):
    m.create("pm")
    m.ok("start", "pm")
    m.ok("reboot", "pm")
    console_text(m, "pm", "fake guest: reset")
    os.kill(m.pid("pm"), signal.SIGKILL)
    deadline = time.monotonic() + 5
    while m.state_of("pm") != "crashed" and time.monotonic() < deadline:
        time.sleep(0.05)
    text = open(os.path.join(m.run_dir, "pm.console")).read()
    assert text.startswith("fake guest pm booted\n")
    assert "fake guest: reset\n" in text


def test_start_failure_reports_the_reason(m):
    """A machine that fails to start is shut off (reason: failed), as virsh shows it, not
    crashed: it never ran."""
    m.create("nokernel")
    os.unlink(m.kernel)
    r = m("start", "nokernel")
    assert r.returncode == 1
    assert "failed to start" in r.stderr and "cannot read it" in r.stderr
    assert m.state_of("nokernel") == "shut off"
    reason = m.ok("domstate", "nokernel", "--reason").stdout.strip()
    assert reason.startswith("shut off (failed: ") and "cannot read it" in reason, reason
    assert list_rows(m.ok("list", "--state-shutoff").stdout) == [("-", "nokernel", "shut off")]
    assert list_rows(m.ok("list", "--state-other").stdout) == []
    assert "machine nokernel failed to start" in open(os.path.join(m.run_dir, "nokernel.log")).read()
    with open(m.kernel, "wb") as f:  # the input is fine again: a failure of the VMM itself
        f.write(b"a kernel")
    r = m("start", "nokernel", env={"KITE_FAKE_FAIL": "KVM_CREATE_VM: no such device"})
    assert r.returncode == 1 and "KVM_CREATE_VM: no such device" in r.stderr


def test_ten_concurrent_starts_start_it_once(m):
    m.create("once")
    launches = os.path.join(m.dir, "launches")
    env = dict(m.env, KITE_FAKE_LAUNCH_LOG=launches)
    procs = [subprocess.Popen([m.kite, "start", "once"], env=env, stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True) for _ in range(10)]
    results = [(p.wait(timeout=60), p.stdout.read(), p.stderr.read()) for p in procs]
    for p in procs:
        p.stdout.close()
        p.stderr.close()
    ok = [r for r in results if r[0] == 0]
    assert len(ok) == 1, results
    assert all("already running" in r[2] for r in results if r[0] != 0), results
    with open(launches) as f:
        assert len(f.read().splitlines()) == 1
    assert m.state_of("once") == "running"


def test_autostart_boot_starts_exactly_the_autostart_set(m):
    for n in ("a1", "a2", "b1", "b2"):
        m.create(n)
    assert m.ok("autostart", "a1").stdout.startswith("Machine 'a1' marked as autostarted")
    m.ok("autostart", "a2")
    m.ok("autostart", "b2")
    m.ok("autostart", "--disable", "b2")
    assert [x[1] for x in list_rows(m.ok("list", "--all", "--autostart").stdout)] == ["a1", "a2"]
    m.ok("start", "a2")  # already running: left alone
    pid_a2 = m.pid("a2")
    r = m.ok("autostart", "--boot")
    assert r.stdout == "Machine 'a1' started\n"
    states = {x[1]: x[2] for x in list_rows(m.ok("list", "--all").stdout)}
    assert states == {"a1": "running", "a2": "running", "b1": "shut off", "b2": "shut off"}
    assert m.pid("a2") == pid_a2
    assert "Autostart:      enable" in m.ok("dominfo", "a1").stdout


def test_shutdown_timeout_reports_a_guest_that_ignores_it(m):
    m.create("stubborn")
    m.ok("start", "stubborn", env={"KITE_FAKE_IGNORE_POWERDOWN": "1"})
    r = m("shutdown", "stubborn", "--timeout", "1")
    assert r.returncode == 1
    assert "still running 1 s after the power button" in r.stderr
    assert m.state_of("stubborn") == "running"
    # The power button did reach the guest.
    assert "power button pressed" in console_text(m, "stubborn", "power button pressed")


def test_console_replays_output_and_sends_input(m):
    m.create("con")
    m.ok("start", "con")
    c = Console(m, "console", "con")
    c.send(b"hello there\n")
    c.wait_for("fake guest: you typed 'hello there'\n")
    rc, err = c.detach()  # Ctrl-]
    assert rc == 0, err
    assert "Connected to machine 'con'" in err
    assert "fake guest con booted\n" in c.text()  # replayed from before we attached
    # Detaching left the machine running.
    assert m.state_of("con") == "running"


def test_start_console_boots_and_attaches(m):
    m.create("sc")
    c = Console(m, "start", "sc", "--console")
    c.wait_for("fake guest sc booted")  # attached (no fixed sleep: ASan on a loaded host)
    rc, err = c.detach()
    assert rc == 0, err
    assert c.text().startswith("Machine 'sc' started\n")
    assert m.state_of("sc") == "running"


def test_event_loop_shows_lifecycle_events(m):
    m.create("ev")
    m.ok("start", "ev")
    p = subprocess.Popen([m.kite, "event", "ev", "--loop", "--timeout", "20"], env=m.env,
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    time.sleep(0.5)  # connected
    m.ok("suspend", "ev")
    m.ok("resume", "ev")
    m.ok("reboot", "ev")
    m.ok("shutdown", "ev", "--timeout", "10")
    out, err = p.communicate(timeout=60)
    assert p.returncode == 0, err
    lines = out.splitlines()
    assert lines[:5] == ["event 'STOP' for machine 'ev'", "event 'RESUME' for machine 'ev'",
                         "event 'RESET' for machine 'ev'", "event 'POWERDOWN' for machine 'ev'",
                         "event 'SHUTDOWN' for machine 'ev'"]
    assert lines[-2:] == ["machine 'ev' stopped", "events received: 5"]


def test_console_of_a_stopped_machine_is_an_error(m):
    m.create("off")
    r = m("console", "off")
    assert r.returncode == 1 and "is not running" in r.stderr


def test_setmem_live_goes_through_the_balloon(m):
    m.create("bal", "-m", "512M")
    m.ok("start", "bal")
    m.ok("setmem", "bal", "256M")
    info = m.ok("dominfo", "bal").stdout
    assert "Used memory:    262144 KiB" in info
    assert "Max memory:     524288 KiB" in info
    assert "MemTotal 262144 kB" in console_text(m, "bal", "MemTotal 262144 kB")
    r = m("setmem", "bal", "1G")
    assert r.returncode == 1 and "maximum memory" in r.stderr
    m.ok("destroy", "bal")
    m.create("noballoon")
    m.ok("start", "noballoon", env={"KITE_FAKE_NO_BALLOON": "1"})
    r = m("setmem", "noballoon", "128M", "--live")
    assert r.returncode == 1 and "no balloon device" in r.stderr


def test_start_applies_the_defined_balloon_target(m):
    m.create("small", "-m", "512M")
    m.ok("setmem", "small", "128M", "--config")
    m.ok("start", "small")
    assert "Used memory:    131072 KiB" in m.ok("dominfo", "small").stdout
    # Without a balloon driver, start still works and says why the target was not set.
    m.ok("destroy", "small")
    r = m.ok("start", "small", env={"KITE_FAKE_NO_BALLOON": "1"})
    assert "cannot set its memory to 131072 KiB" in r.stderr


def test_live_changes_that_need_hotplug_say_so(m):
    m.create("hp")
    m.ok("start", "hp")
    r = m("setvcpus", "hp", "2")
    assert r.returncode == 1 and "live vCPU hot-plug comes in a later issue" in r.stderr
    r = m("attach-disk", "hp", m.disk("x.raw"), "vdb")
    assert r.returncode == 1 and "hot-plug comes in a later issue" in r.stderr
    r = m("attach-interface", "hp", "user", "--live")
    assert r.returncode == 1 and "hot-plug comes in a later issue" in r.stderr
    # --config still works on a running machine, for the next start.
    m.ok("setvcpus", "hp", "2", "--config")
    assert json.loads(m.ok("dumpjson", "hp").stdout)["vcpus"] == 2
    r = m("undefine", "hp")
    assert r.returncode == 1 and "is running" in r.stderr


# ---- the socket itself ----------------------------------------------------------------------

def event_client(m, name):
    """A client on NAME's control socket that has had an answer, so it gets events from here
    on: (socket, line iterator, query-status's return)."""
    s = socket.socket(socket.AF_UNIX)
    s.settimeout(60)
    s.connect(os.path.join(m.run_dir, f"{name}.sock"))
    lines = sock_lines(s)
    next(lines)  # greeting
    s.sendall(b'{"execute": "query-status"}\n')
    return s, lines, json.loads(next(lines))["return"]


def sock_lines(s):
    buf = b""
    while True:
        chunk = s.recv(65536)
        if not chunk:
            if buf:
                yield buf
            return
        buf += chunk
        while b"\n" in buf:
            line, buf = buf.split(b"\n", 1)
            yield line


def test_socket_errors_and_the_vm_keeps_running(m):
    m.create("sk")
    m.ok("start", "sk")
    path = os.path.join(m.run_dir, "sk.sock")
    assert oct(os.stat(path).st_mode & 0o777) == "0o660"
    s = socket.socket(socket.AF_UNIX)
    s.settimeout(5)
    s.connect(path)
    lines = sock_lines(s)
    greeting = json.loads(next(lines))
    assert greeting["kite"]["protocol"] == 1
    s.sendall(b'{"execute": "query-status", "id": "a"}\n')
    assert json.loads(next(lines)) == {"return": {"status": "running", "running": True},
                                       "id": "a"}
    s.sendall(b"this is not json\n")
    err = json.loads(next(lines))["error"]
    assert err["class"] == "GenericError" and "JSON parse error" in err["desc"]
    s.sendall(b'{"execute": "no-such-command", "id": 7}\n')
    reply = json.loads(next(lines))
    assert reply["error"]["class"] == "CommandNotFound" and reply["id"] == 7
    try:
        s.sendall(b"x" * 70000 + b"\n")
    except (BrokenPipeError, ConnectionResetError):
        pass
    err = json.loads(next(lines))["error"]
    assert "longer than 65536 bytes" in err["desc"]
    try:  # closed: EOF, or a reset since the rest of the line was never read
        assert next(lines, None) is None
    except ConnectionResetError:
        pass
    s.close()
    assert m.state_of("sk") == "running"


def docs_commands():
    """The command names of the table in docs/control-protocol.md."""
    text = open(os.path.join(ROOT, "docs", "control-protocol.md")).read()
    table = text[text.index("### Commands"):]
    table = table[table.index("|---|"):].split("\n\n")[0]
    return re.findall(r"^\| `([^`]+)` \|", table, re.M)


def test_monitor_sends_any_command_of_the_table(m):
    """kite monitor's help, the VMM's query-commands and the docs list the same commands."""
    help_text = m.ok("monitor", "--help").stdout
    documented = docs_commands()
    assert "balloon" in documented and "query-status" in documented
    for name in documented:
        assert re.search(rf"^  {re.escape(name)} ", help_text, re.M), name
    m.create("mon", "-m", "512M")
    m.ok("start", "mon")
    listed = [c["name"] for c in json.loads(m.ok("monitor", "mon", "query-commands").stdout)]
    assert sorted(listed) == sorted(documented)
    status = json.loads(m.ok("monitor", "mon", "query-status").stdout)
    assert status == {"status": "running", "running": True}
    assert json.loads(m.ok("monitor", "mon", "balloon", '{"value": 268435456}').stdout) == {}
    assert "Used memory:    262144 KiB" in m.ok("dominfo", "mon").stdout
    for argv, message in ((["frobnicate"], "no command 'frobnicate'"),
                          (["balloon"], 'balloon needs "value"'),
                          (["balloon", '{"valu": 1}'], "balloon takes no argument 'valu'"),
                          (["balloon", "[1]"], "is not a JSON object"),
                          (["stop", '{"now": true}'], "stop takes no argument 'now'"),
                          (["console"], "kite console mon")):
        r = m("monitor", "mon", *argv)
        assert r.returncode == 1 and r.stderr.startswith("kite: error: "), r.stderr
        assert message in r.stderr, r.stderr
    m.ok("destroy", "mon")


def test_a_hanging_vmm_command_times_out_and_the_vm_keeps_answering(m):
    m.create("hang")
    m.ok("start", "hang", env={"KITE_FAKE_HANG": "stop", "KITE_FAKE_TIMEOUT_MS": "300"})
    r = m("suspend", "hang")  # returns (pytest-timeout would catch a hang), with the reason
    assert r.returncode == 1 and "stop did not complete within 300 ms" in r.stderr
    assert m.state_of("hang") == "running"
    destroy(m, "hang")
    assert m.state_of("hang") == "shut off"


def test_socket_refuses_a_user_outside_the_group(m):
    if os.geteuid() != 0:
        pytest.skip("needs root to act as a throwaway user")
    m.create("perm")
    m.ok("start", "perm")
    path = os.path.join(m.run_dir, "perm.sock")
    # A throwaway uid/gid with no account and no group kite.
    code = ("import socket,sys\n"
            "s=socket.socket(socket.AF_UNIX)\n"
            "try:\n s.connect(sys.argv[1])\nexcept PermissionError:\n sys.exit(3)\n"
            "sys.exit(4)\n")

    def become():
        os.setgroups([])
        os.setgid(54321)
        os.setuid(54321)

    r = subprocess.run(["/usr/bin/python3", "-c", code, path], preexec_fn=become, timeout=60)
    assert r.returncode == 3
    assert m.state_of("perm") == "running"


# ---- the real kite run ----------------------------------------------------------------------

needs_kvm = pytest.mark.kvm


def guest(name):
    path = os.path.join(ROOT, "build", "guests", f"{name}.elf")
    if not os.path.exists(path):
        pytest.fail(f"{path} is missing: run make guests")
    return path


def vm_gone(pid):
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] == "Z"
    except OSError:  # gone between the open and the read: ESRCH
        return True


def destroy(m, name):
    """Runs `kite destroy NAME`: it says so, and the VM process is gone when it returns. (How
    fast is bench/mgmt's business: a poller's timing in the nested KVM host under load is no
    test.)"""
    pid = m.pid(name)
    r = m("destroy", name)
    assert r.returncode == 0, r.stdout + r.stderr
    assert r.stdout.startswith(f"Machine '{name}' destroyed"), r.stdout
    assert vm_gone(pid)


@pytest.mark.skipif(HAVE_KVM, reason="this host has /dev/kvm: the VM would start")
def test_real_kite_run_failure_is_reported_with_its_reason(m):
    """With the real `kite run` on a host without /dev/kvm, start fails with the VMM's own
    error, and the machine reads as shut off (failed) with it."""
    del m.env["KITE_RUNNER"]
    m.ok("create", "nokvm", "--kernel", guest("serial"), "-m", "64M")
    r = m("start", "nokvm")
    assert r.returncode == 1
    assert "failed to start" in r.stderr and "/dev/kvm" in r.stderr
    reason = m.ok("domstate", "nokvm", "--reason").stdout
    assert reason.startswith("shut off (failed: ") and "/dev/kvm" in reason, reason
    assert list_rows(m.ok("list", "--all").stdout) == [("-", "nokvm", "shut off")]


@needs_kvm
def test_real_vm_lifecycle(m):
    del m.env["KITE_RUNNER"]
    m.ok("create", "real", "--kernel", guest("serial"), "-m", "64M")
    m.ok("start", "real")
    assert m.state_of("real") == "running"
    m.ok("suspend", "real")
    assert m.state_of("real") == "paused"
    m.ok("resume", "real")
    c = Console(m, "console", "real")
    c.wait_for("READY")  # the guest's line, replayed or live, not a sleep's guess
    rc, err = c.detach()
    assert rc == 0, err
    destroy(m, "real")
    assert m.state_of("real") == "shut off"


@needs_kvm
def test_real_vm_that_powers_off_is_shut_off(m):
    del m.env["KITE_RUNNER"]
    m.ok("create", "po", "--kernel", guest("poweroff"), "-m", "64M")
    r = m("start", "po")
    # It may power off before start sees it answer; either way it ends shut off, not crashed.
    deadline = time.monotonic() + VM_WAIT
    while m.state_of("po") != "shut off" and time.monotonic() < deadline:
        time.sleep(0.05)
    assert m.state_of("po") == "shut off", r.stderr


@needs_kvm
def test_real_vm_starts_what_create_accepts(m):
    """Every kind of option, under the real kite run: the machines create stored boot, with
    the console where the definition puts it."""
    m.env.pop("KITE_RUNNER", None)
    a, b = m.disk("a,x.raw"), m.disk("b.raw")
    log = os.path.join(m.dir, "full.console")
    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    m.ok("create", "full", "--kernel", guest("serial"), "-m", "64M", "-c", "2",
         "--disk", f"{a.replace(',', ',,')},format=raw,target=vdc,readonly=on,serial=S1",
         "--disk", f"{b},cache=writeback", "--net", f"user,hostfwd=tcp:127.0.0.1:{port}-:22",
         "--net", "user,mac=52:54:00:00:00:09", "--rng", "--balloon=on",
         "--console", f"file:{log}", "--append", "x=1")
    m.ok("start", "full")
    assert m.state_of("full") == "running"
    deadline = time.monotonic() + VM_WAIT
    while "READY: polling" not in (open(log).read() if os.path.exists(log) else ""):
        assert time.monotonic() < deadline, "no READY in the console file"
        time.sleep(0.1)
    destroy(m, "full")
    import random
    rnd = random.Random(15)
    for i in range(3):
        name = f"r{i}"
        opts = random_machine_options(rnd, m, i, real=True)
        # a guest that runs until destroyed: the serial guest ends by itself after 60 s of
        # waiting for input, which under ASan in the nested KVM host can come before destroy
        if "--append" in opts:
            opts[opts.index("--append") + 1] += " timeout=600"
        else:
            opts += ["--append", "timeout=600"]
        m.ok("create", name, "--kernel", guest("powerbutton"), *opts)
        r = m("start", name)
        assert r.returncode == 0, (opts, r.stderr)
        assert m.state_of(name) == "running", opts
        m.ok("destroy", name)
        assert m.state_of(name) == "shut off"


class Console:
    """`kite console NAME` (or another attaching verb) in the background: what it printed so
    far, and its input."""

    def __init__(self, m, *argv):
        self.p = subprocess.Popen([m.kite, *argv], env=m.env,
                                  stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                  stderr=subprocess.PIPE)
        self.out = b""
        self.lock = threading.Lock()
        self.t = threading.Thread(target=self._read, daemon=True)
        self.t.start()

    def _read(self):
        while True:
            chunk = os.read(self.p.stdout.fileno(), 65536)
            if not chunk:
                return
            with self.lock:
                self.out += chunk

    def text(self):
        with self.lock:
            return self.out.decode("utf-8", "replace")

    def wait_for(self, needle, timeout=VM_WAIT):
        deadline = time.monotonic() + timeout
        while needle not in self.text():
            assert time.monotonic() < deadline, f"no {needle!r} on the console:\n{self.text()}"
            assert self.p.poll() is None, f"kite console ended:\n{self.text()}"
            time.sleep(0.05)
        return self.text()

    def send(self, data):
        self.p.stdin.write(data)
        self.p.stdin.flush()

    def detach(self):
        self.send(b"\x1d")
        _, err = self.p.communicate(timeout=10)
        self.t.join(timeout=10)
        return self.p.returncode, err.decode("utf-8", "replace")


def wait_state(m, name, want, timeout=VM_WAIT):
    deadline = time.monotonic() + timeout
    while (state := m.state_of(name)) != want and time.monotonic() < deadline:
        time.sleep(0.05)
    return state


def real(m, name, program, *opts):
    """A machine booting guest program PROGRAM under the real `kite run`."""
    m.env.pop("KITE_RUNNER", None)
    m.ok("create", name, "--kernel", guest(program), *opts)


@needs_kvm
def test_real_vm_state_transitions_as_virsh(m):
    """shut off -> running -> paused -> running -> shut off (the guest's own power-off after
    the power button) -> running again -> shut off (destroy), domstate at each step."""
    real(m, "st", "powerbutton", "-m", "64M", "--append", "timeout=600")
    assert m.state_of("st") == "shut off"
    assert m.ok("start", "st").stdout == "Machine 'st' started\n"
    assert m.state_of("st") == "running"
    pid = m.pid("st")
    assert list_rows(m.ok("list").stdout) == [(str(pid), "st", "running")]
    console_text(m, "st", "READY: power button", timeout=VM_WAIT)
    m.ok("suspend", "st")
    assert m.state_of("st") == "paused"
    assert [x[1] for x in list_rows(m.ok("list", "--state-paused").stdout)] == ["st"]
    assert m.ok("domstate", "st", "--reason").stdout.startswith("paused")
    m.ok("resume", "st")
    assert m.state_of("st") == "running"
    r = m.ok("shutdown", "st", "--timeout", "60")
    assert r.stdout.endswith("Machine 'st' shut off\n"), r.stdout
    assert m.state_of("st") == "shut off"
    assert not os.path.exists(os.path.join(m.run_dir, "st.sock"))
    assert [x[1] for x in list_rows(m.ok("list", "--state-shutoff").stdout)] == ["st"]
    text = console_text(m, "st", "SUMMARY")
    assert "SUMMARY: 5 passed, 0 failed" in text, text
    m.ok("start", "st")
    assert m.state_of("st") == "running" and m.pid("st") != pid
    destroy(m, "st")
    assert m.state_of("st") == "shut off"


@needs_kvm
def test_real_vm_shutdown_is_the_acpi_power_button(m):
    """kite shutdown presses the power button: the guest takes the SCI, clears PWRBTN_STS and
    powers off through PM1a_CNT; the machine is shut off, not crashed."""
    real(m, "pb", "powerbutton", "-m", "64M", "--append", "timeout=600")
    m.ok("start", "pb")
    console_text(m, "pb", "READY: power button", timeout=VM_WAIT)
    # A client on the socket sees the events: registered once it has an answer.
    s, lines, status = event_client(m, "pb")
    assert status["status"] == "running"
    r = m.ok("shutdown", "pb")
    assert r.stdout == "Machine 'pb' is being shutdown\n"
    assert wait_state(m, "pb", "shut off", timeout=VM_WAIT) == "shut off"
    events = [json.loads(l)["event"] for l in lines]  # to EOF: the VMM is gone
    s.close()
    assert events == ["POWERDOWN", "SHUTDOWN"], events
    text = console_text(m, "pb", "SUMMARY")
    for line in ("READY: power button (SCI on GSI 9, level, active high)",
                 "PASS: ACPI mode: SCI_EN set in PM1a_CNT",
                 "PASS: power button pressed: SCI delivered",
                 "PASS: one SCI for one press (1)",
                 "PASS: PWRBTN_STS cleared by writing 1",
                 "SUMMARY: 5 passed, 0 failed",
                 "guest: power-off: 0x3400 to PM1a_CNT port 0x604"):
        assert line in text, text
    assert "fallbacks" not in text, text
    log = open(os.path.join(m.run_dir, "pb.log")).read()
    assert "crashed" not in log, log
    assert m.ok("domstate", "pb", "--reason").stdout.strip() == "shut off (shutdown)"


@needs_kvm
def test_real_vm_shutdown_timeout_when_the_guest_ignores_the_button(m):
    """The serial guest never enables PWRBTN_EN: the press changes nothing and --timeout says
    so, as the verb defines; the machine keeps running."""
    real(m, "deaf", "serial", "-m", "64M")
    m.ok("start", "deaf")
    console_text(m, "deaf", "READY: polling", timeout=VM_WAIT)
    r = m("shutdown", "deaf", "--timeout", "1")
    assert r.returncode == 1, r.stdout + r.stderr
    assert r.stdout == "Machine 'deaf' is being shutdown\n"
    assert ("kite: error: machine deaf is still running 1 s after the power button: the guest "
            "ignored it ('kite destroy deaf' stops it now)") in r.stderr
    assert m.state_of("deaf") == "running"
    destroy(m, "deaf")
    assert m.state_of("deaf") == "shut off"


@needs_kvm
def test_real_vm_kill_9_is_crashed_and_restarts(m):
    real(m, "k9", "powerbutton", "-m", "64M", "--append", "timeout=600")
    real(m, "other", "powerbutton", "-m", "64M", "--append", "timeout=600")
    m.ok("start", "k9")
    m.ok("start", "other")
    console_text(m, "k9", "READY: power button", timeout=VM_WAIT)
    pid = m.pid("k9")
    os.kill(pid, signal.SIGKILL)
    assert wait_state(m, "k9", "crashed") == "crashed"
    rows = list_rows(m.ok("list", "--all").stdout)
    assert ("-", "k9", "crashed") in rows
    assert (str(m.pid("other")), "other", "running") in rows
    assert m.ok("domstate", "k9", "--reason").stdout.startswith(
        "crashed (VM process killed by signal 9")
    assert "killed by signal 9" in m.ok("dominfo", "k9").stdout
    assert "crashed: VM process killed by signal 9" in \
        open(os.path.join(m.run_dir, "k9.log")).read()
    # What the guest wrote before the kill is kept.
    assert "READY: power button" in open(os.path.join(m.run_dir, "k9.console")).read()
    r = m.ok("start", "k9")
    assert r.stdout == "Machine 'k9' started\n"
    assert m.state_of("k9") == "running" and m.pid("k9") != pid
    assert "READY: power button" in console_text(m, "k9", "READY: power button", timeout=VM_WAIT)
    m.ok("destroy", "k9")
    m.ok("destroy", "other")
    assert m.state_of("k9") == "shut off" and m.state_of("other") == "shut off"


@needs_kvm
def test_real_vm_console_shows_output_and_sends_input(m):
    """kite console replays what the guest printed, carries live output, and what is typed
    reaches the guest's UART: read by polling first, then by the IRQ 4 handler."""
    real(m, "tty", "serial", "-m", "64M", "--append", "line1=hello_kite line2=via_irq4")
    m.ok("start", "tty")
    console_text(m, "tty", "READY: polling", timeout=VM_WAIT)
    c = Console(m, "console", "tty")
    c.wait_for("READY: polling")  # replayed: it was printed before we attached
    c.send(b"hello_kite\n")
    c.wait_for("PASS: serial input (polling): line matches line1=")
    c.wait_for("READY: irq")
    c.send(b"via_irq4\n")
    text = c.wait_for("PASS: serial input (irq): line matches line2=")
    rc, err = c.detach()
    assert rc == 0, err
    assert "Connected to machine 'tty'" in err
    assert "GUEST serial: start" in text and "echo: hello_kite" in text and \
        "echo: via_irq4" in text, text
    # The guest ends by itself (S5) once both lines arrived: shut off, exit 0.
    assert wait_state(m, "tty", "shut off", timeout=VM_WAIT) == "shut off"
    assert re.search(r"^SUMMARY: \d+ passed, 0 failed\r?$", console_text(m, "tty", "SUMMARY"), re.M)


# Whole lines only: the console log grows a byte at a time, and "usable=2" may be the
# start of "usable=255".
BALLOON_RE = re.compile(r"BALLOON: target=(\d+) actual=(\d+) usable=(\d+)\r?\n")


def balloon_lines(m, name, count, timeout=VM_WAIT):
    """The guest's BALLOON lines once it printed `count` of them."""
    deadline = time.monotonic() + timeout
    while True:
        text = open(os.path.join(m.run_dir, f"{name}.console")).read()
        found = [tuple(map(int, x)) for x in BALLOON_RE.findall(text)]
        if len(found) >= count:
            return found
        assert time.monotonic() < deadline, text
        time.sleep(0.05)


def used_kib(m, name):
    info = m.ok("dominfo", name).stdout
    return int(re.search(r"^Used memory: +(\d+) KiB$", info, re.M).group(1))


def wait_used(m, name, kib, timeout=VM_WAIT):
    deadline = time.monotonic() + timeout
    while (used := used_kib(m, name)) != kib and time.monotonic() < deadline:
        time.sleep(0.1)
    return used


@needs_kvm
def test_real_vm_setmem_changes_what_the_guest_sees(m):
    """kite setmem through the balloon: the guest's driver inflates to the target and has that
    much less RAM; dominfo shows the memory the guest confirmed; setmem back up deflates."""
    real(m, "bal", "balloon", "-m", "256M")
    m.ok("setmem", "bal", "192M", "--config")  # applied by start
    m.ok("start", "bal")
    console_text(m, "bal", "READY: balloon", timeout=VM_WAIT)
    first = balloon_lines(m, "bal", 2)
    assert first[0][:2] == (0, 0) and 250 <= first[0][2] <= 256, first
    assert first[1][:2] == (16384, 16384) and 186 <= first[1][2] <= 192, first
    assert wait_used(m, "bal", 196608) == 196608

    # The VMM reports the driver's progress as QEMU does: BALLOON_CHANGE, the guest's memory.
    s, lines, _ = event_client(m, "bal")
    m.ok("setmem", "bal", "128M")
    changes = []
    deadline = time.monotonic() + 120
    while not changes or changes[-1] != 128 << 20:
        assert time.monotonic() < deadline, f"BALLOON_CHANGE events so far: {changes}"
        msg = json.loads(next(lines))
        if msg.get("event") == "BALLOON_CHANGE":
            changes.append(msg["data"]["actual"])
    s.close()
    assert changes == sorted(changes, reverse=True) and changes[0] < 192 << 20, changes
    target, actual, usable = balloon_lines(m, "bal", 3)[2]
    assert (target, actual) == (32768, 32768)  # 128 MiB of 4 KiB pages in the balloon
    assert 122 <= usable <= 128, usable
    assert wait_used(m, "bal", 131072) == 131072
    info = m.ok("dominfo", "bal").stdout
    assert "Max memory:     262144 KiB" in info

    m.ok("setmem", "bal", "262144")  # KiB: all of it back
    target, actual, usable = balloon_lines(m, "bal", 4)[3]
    assert (target, actual) == (0, 0) and usable == first[0][2]
    assert wait_used(m, "bal", 262144) == 262144
    r = m("setmem", "bal", "512M")
    assert r.returncode == 1 and "maximum memory" in r.stderr
    # The definition keeps its own current memory: --live changes only the running guest.
    assert json.loads(m.ok("dumpjson", "bal").stdout)["current_memory"] == 192 << 20
    r = m.ok("shutdown", "bal", "--timeout", "60")
    assert "shut off" in r.stdout
    text = console_text(m, "bal", "SUMMARY")
    assert "SUMMARY: 2 passed, 0 failed" in text, text
