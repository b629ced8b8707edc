"""Proof that the e2e harness itself works: boot, units, notify, docker, teardown.

These tests use nothing of pullunit except in the install test, which installs a
tiny fake package of its own so it passes whatever state pullunit/ is in.
"""

from __future__ import annotations

import os
import subprocess
import textwrap
from pathlib import Path

import harness
import pytest
from harness import Machine

pytestmark = pytest.mark.e2e


def test_no_leftovers_after_sequential_boots(e2e_root: Path, host_docker: None) -> None:
    """Boot and tear down a few machines; the host then holds nothing of ours
    (this session's machines only: another session's are skipped by name)."""
    names = []
    for _ in range(3):
        with Machine(e2e_root) as m:
            names.append(m.name)
    mine = [x for x in harness.leftovers() if any(n in x for n in names)]
    assert mine == []


def _nspawn_procs_under(run_dir: Path) -> list[int]:
    """Host pids of systemd-nspawn processes whose root lies in the harness scratch dir
    (ours only: other people's nspawns on the host are none of our business)."""
    pids = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            argv = harness._proc_cmdline(int(entry))
            if argv and argv[0].endswith("systemd-nspawn") and any(
                    a.startswith(str(run_dir)) for a in argv):
                pids.append(int(entry))
    return pids


def _overlay_mounts_under(run_dir: Path) -> list[str]:
    out = []
    for line in Path("/proc/self/mountinfo").read_text().splitlines():
        pre, _, post = line.partition(" - ")
        if post.startswith("overlay ") and pre.split()[4].startswith(str(run_dir)):
            out.append(pre.split()[4])
    return out


def _assert_no_leftovers(m: Machine, nspawn_pid: int, pid1: int, workdir: Path) -> None:
    assert not harness._pid_alive(nspawn_pid), "nspawn still running"
    assert not harness._pid_alive(pid1), "container PID 1 still running"
    assert not workdir.exists(), f"{workdir} not removed"
    assert harness._mounts_under(workdir) == []
    assert nspawn_pid not in _nspawn_procs_under(harness.RUN_DIR)


def test_boot_reaches_running_or_degraded(machine: Machine) -> None:
    assert machine.state in ("running", "degraded")
    assert machine.overlay, "expected the fast overlayfs path on this host"
    state = machine.systemctl("is-system-running", check=False).stdout.strip()
    assert state in ("running", "degraded"), machine.systemctl("--failed", check=False).stdout
    # PID 1 inside really is systemd 252, in its own pid namespace.
    assert machine.run(["cat", "/proc/1/comm"]).stdout.strip() == "systemd"
    assert "systemd 252" in machine.systemctl("--version").stdout
    assert machine.run(["hostname"]).stdout.strip() == machine.name
    # Masked: the container must never run an engine of its own.
    props = machine.show("docker.service", "LoadState", "ActiveState")
    assert props == {"LoadState": "masked", "ActiveState": "inactive"}


def test_run_gets_clean_env_and_timeout_kills(machine: Machine) -> None:
    env = machine.run(["env"], env={"FOO": "bar baz"}).stdout.splitlines()
    assert "FOO=bar baz" in env
    assert not any(line.startswith("PYENV") for line in env), "host env leaked in"
    r = machine.run(["sh", "-c", "exit 3"], check=False)
    assert r.returncode == 3
    with pytest.raises(subprocess.CalledProcessError):
        machine.run(["false"])
    with pytest.raises(subprocess.TimeoutExpired):
        machine.run(["sleep", "127"], timeout=1)
    # The timed-out command is gone inside, not just the nsenter in front of it.
    left = machine.run(["pgrep", "-f", "sleep 127"], check=False)
    assert left.returncode == 1, left.stdout


def test_hand_written_unit_starts(machine: Machine) -> None:
    machine.write_file("/etc/systemd/system/e2e-hello.service", textwrap.dedent("""\
        [Unit]
        Description=e2e hello 100%% sure

        [Service]
        Type=oneshot
        RemainAfterExit=yes
        ExecStart=/bin/sh -c 'echo hello-from-unit; touch /run/e2e-hello.done'
        """))
    machine.systemctl("daemon-reload")
    machine.systemctl("start", "e2e-hello.service")
    props = machine.show("e2e-hello.service", "ActiveState", "SubState", "Result",
                         "Description")
    assert props == {"ActiveState": "active", "SubState": "exited", "Result": "success",
                     "Description": "e2e hello 100% sure"}
    assert machine.run(["test", "-e", "/run/e2e-hello.done"], check=False).returncode == 0
    machine.wait_for(lambda: "hello-from-unit" in machine.journal("e2e-hello.service"),
                     10, what="unit output in the journal")


def test_transient_unit_via_systemd_run(machine: Machine) -> None:
    # Type=simple (the default): the start job completes at fork, so --wait reports
    # the command's own exit status. (With Type=exec/oneshot a fast exit fails the
    # start job and systemd-run says 1 instead - racy, not a harness problem.)
    r = machine.run(["systemd-run", "--unit=e2e-transient", "--wait", "--quiet",
                     "/bin/sh", "-c", "echo transient-out; exit 7"], check=False)
    assert r.returncode == 7, r.stderr
    props = machine.show("e2e-transient.service", "LoadState")
    assert props["LoadState"] in ("not-found", "loaded")  # GC'd or not yet
    machine.wait_for(lambda: "transient-out" in machine.journal("e2e-transient.service"),
                     10, what="transient unit output in the journal")


NOTIFY_PY = """\
import time
import sdnotify
time.sleep(1)
sdnotify.SystemdNotifier().notify("READY=1\\nSTATUS=pulled")
"""


@pytest.mark.parametrize("exec_start", [
    # The main process itself sends READY=1, so PID 1 can always attribute it
    # (a forked systemd-notify that exits first may be dropped: a known race).
    "/bin/sh -c 'sleep 1; exec systemd-notify --ready --status=pulled'",
    # The same through python3-sdnotify, which the product uses.
    "/usr/bin/python3 /usr/local/bin/e2e-notify.py",
], ids=["systemd-notify", "python-sdnotify"])
def test_notify_unit_becomes_active(machine: Machine, exec_start: str) -> None:
    machine.write_file("/usr/local/bin/e2e-notify.py", NOTIFY_PY)
    machine.write_file("/etc/systemd/system/e2e-notify.service", textwrap.dedent(f"""\
        [Service]
        Type=notify
        RemainAfterExit=yes
        TimeoutStartSec=30
        ExecStart={exec_start}
        """))
    machine.systemctl("daemon-reload")
    machine.systemctl("start", "--no-block", "e2e-notify.service")
    # Shows up as activating first: the start job waits for READY=1.
    assert machine.show("e2e-notify.service", "ActiveState")["ActiveState"] in (
        "activating", "active")
    machine.wait_state("e2e-notify.service", "active", timeout=20)
    props = machine.show("e2e-notify.service", "StatusText", "Result", "NRestarts")
    assert props == {"StatusText": "pulled", "Result": "success", "NRestarts": "0"}


def test_host_docker_usable_inside(machine: Machine) -> None:
    ver = machine.run(["docker", "version", "--format", "{{.Server.Version}}"]).stdout.strip()
    assert ver and ver[0].isdigit(), ver
    # The same engine through the Python SDK the product uses (python3-docker 5.0.3).
    py = machine.run(["python3", "-c",
                      "import docker; print(docker.from_env().version()['Version'])"])
    assert py.stdout.strip() == ver


def test_two_machines_sequentially(e2e_root: Path, host_docker: None) -> None:
    names = []
    with Machine(e2e_root) as a:
        a.write_file("/etc/e2e-marker", "from a\n")
        assert a.read_file("/etc/e2e-marker") == "from a\n"
        names.append(a.name)
    with Machine(e2e_root) as b:
        # Fresh overlay: a's write is gone, and it never reached the cached root.
        assert b.run(["test", "-e", "/etc/e2e-marker"], check=False).returncode == 1
        assert b.state in ("running", "degraded")
        names.append(b.name)
    assert names[0] != names[1]
    assert not (e2e_root / "etc/e2e-marker").exists()


def test_teardown_leaves_no_process_or_mount(e2e_root: Path, host_docker: None) -> None:
    m = Machine(e2e_root)
    with m:
        assert m.proc is not None and m.pid1 is not None and m.workdir is not None
        nspawn_pid, pid1, workdir = m.proc.pid, m.pid1, m.workdir
        assert _overlay_mounts_under(workdir) == [str(workdir / "root")]
        assert nspawn_pid in _nspawn_procs_under(harness.RUN_DIR)
    _assert_no_leftovers(m, nspawn_pid, pid1, workdir)
    assert m.teardown_seconds is not None and m.teardown_seconds < m.stop_timeout


def test_failure_inside_block_dumps_journal_and_cleans_up(
        e2e_root: Path, host_docker: None, capsys: pytest.CaptureFixture[str]) -> None:
    m = Machine(e2e_root)
    with pytest.raises(RuntimeError, match="boom"), m:
        assert m.proc is not None and m.pid1 is not None and m.workdir is not None
        nspawn_pid, pid1, workdir = m.proc.pid, m.pid1, m.workdir
        m.run(["logger", "-t", "e2e-marker", "journal-dump-check"])
        m.wait_for(lambda: "journal-dump-check" in m.journal(), 10, what="log line")
        raise RuntimeError("boom")
    assert "journal-dump-check" in capsys.readouterr().err
    _assert_no_leftovers(m, nspawn_pid, pid1, workdir)


def test_stale_machine_of_dead_owner_is_swept(e2e_root: Path, host_docker: None) -> None:
    """A machine whose test process died (owner pid gone) is stopped and removed by the
    next sweep, which every Machine.start() runs."""
    dead = subprocess.Popen(["true"])
    dead.wait()
    m = Machine(e2e_root)
    with m:
        assert m.proc is not None and m.pid1 is not None and m.workdir is not None
        nspawn_pid, pid1, workdir = m.proc.pid, m.pid1, m.workdir
        (workdir / "owner.pid").write_text(str(dead.pid))
        harness.sweep_stale_machines()
        assert m.proc.poll() is not None
    _assert_no_leftovers(m, nspawn_pid, pid1, workdir)


def test_copy_fallback_boots(e2e_root: Path, host_docker: None) -> None:
    with Machine(e2e_root, use_overlay=False) as m:
        assert not m.overlay
        assert m.state in ("running", "degraded")
        m.write_file("/etc/e2e-copy", "x")
    assert not (e2e_root / "etc/e2e-copy").exists()


def test_extra_bind(e2e_root: Path, host_docker: None, tmp_path: Path) -> None:
    (tmp_path / "hello.txt").write_text("from host\n")
    with Machine(e2e_root, binds=[f"{tmp_path}:/mnt/host"]) as m:
        assert m.read_file("/mnt/host/hello.txt") == "from host\n"


FAKE_CLI = """\
import sys
from importlib.resources import files


def main(argv=None):
    argv = sys.argv[1:] if argv is None else argv
    tpl = files("pullunit.templates").joinpath("hello.j2").read_text().strip()
    print("fake-pullunit", tpl, *argv)
    return 0
"""

FAKE_GENERATOR = """\
import sys
from pathlib import Path


def main(argv=None):
    argv = sys.argv[1:] if argv is None else argv
    normal = Path(argv[0])
    (normal / "fake-generated.service").write_text(
        "[Service]\\nType=oneshot\\nExecStart=/bin/true\\n")
    return 0
"""


def test_install_pullunit_from_tree_with_fake_package(machine: Machine,
                                                      tmp_path: Path) -> None:
    pkg = tmp_path / "pullunit"
    (pkg / "__pycache__").mkdir(parents=True)
    (pkg / "__init__.py").write_text("__version__ = '0.0.fake'\n")
    (pkg / "cli.py").write_text(FAKE_CLI)
    (pkg / "sdgenerator.py").write_text(FAKE_GENERATOR)
    (pkg / "__pycache__" / "junk.pyc").write_bytes(b"junk")
    (tmp_path / "templates").mkdir()
    (tmp_path / "templates" / "__init__.py").write_text("")
    (tmp_path / "templates" / "hello.j2").write_text("tpl-ok\n")

    harness.install_pullunit_from_tree(machine, tmp_path)

    assert machine.run(["pullunit", "a", "b"]).stdout.strip() == "fake-pullunit tpl-ok a b"
    assert machine.run(["test", "-e", f"{harness.PULLUNIT_DIST}/__pycache__/junk.pyc"],
                       check=False).returncode == 1
    mode = machine.run(["stat", "-c", "%a", "/usr/lib/systemd/system-generators/"
                        "pullunit-generator"]).stdout.strip()
    assert mode == "755"
    # PID 1 runs the generator on daemon-reload; its unit then loads.
    machine.systemctl("daemon-reload")
    assert machine.show("fake-generated.service", "LoadState") == {"LoadState": "loaded"}
    machine.systemctl("start", "fake-generated.service")
    assert machine.show("fake-generated.service", "Result") == {"Result": "success"}


def test_install_pullunit_from_real_tree_if_present(machine: Machine) -> None:
    """The real tree installs and imports; tolerant while pullunit/ is being written."""
    tree = Path(__file__).resolve().parents[2]
    if not (tree / "pullunit" / "__init__.py").is_file():
        pytest.skip("no pullunit package in this tree yet")
    harness.install_pullunit_from_tree(machine, tree)
    r = machine.run(["python3", "-c", "import pullunit; print(pullunit.__file__)"])
    assert r.stdout.strip() == f"{harness.PULLUNIT_DIST}/__init__.py"
    assert machine.run(["test", "-x", "/usr/bin/pullunit"], check=False).returncode == 0
