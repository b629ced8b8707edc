"""pullunit.health (pure: docker flags, the readiness verdict) and pullunit.gate.wait (the
loop, driven with a scripted engine and a fake clock)."""

from __future__ import annotations

import shutil
import subprocess
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pullunit.config import HealthConfig
from pullunit.gate import EngineError, wait
from pullunit.health import (
    Verdict,
    docker_flags,
    go_duration,
    judge,
    shell_command,
)

SHELLS = [s for s in ("/bin/sh", "/bin/dash", shutil.which("busybox")) if s]


# -- docker run flags --------------------------------------------------------------------

def test_no_health_options_leave_the_image_healthcheck_alone() -> None:
    assert docker_flags(HealthConfig()) == []
    assert docker_flags(HealthConfig(enabled=False, start_timeout=5)) == []


def test_every_option_becomes_its_flag() -> None:
    h = HealthConfig(cmd=("/bin/check", "--quick"), interval=1.5, timeout=30.0, retries=4,
                     start_period=0.001)
    assert docker_flags(h) == ["--health-cmd", "exec /bin/check --quick",
                               "--health-interval=1500ms", "--health-timeout=30s",
                               "--health-start-period=1ms", "--health-retries=4"]


@pytest.mark.parametrize(("seconds", "text"), [(1.0, "1s"), (0.25, "250ms"), (90.0, "90s"),
                                               (3600.5, "3600500ms"), (0.001, "1ms")])
def test_go_duration(seconds: float, text: str) -> None:
    assert go_duration(seconds) == text


HOSTILE = ["plain", "", " ", "it's", '"q"', "$HOME", "${X}", "$(id)", "`id`", "a;b", ";", "&",
           "|", "100%", "%n", "\\", "back\\slash", "*", "?", "~", "-n", "é ☃ 😀", "a\tb"]


def _argv_through(shell: str, words: tuple[str, ...]) -> list[str]:
    """What a command gets when `shell -c shell_command(words)` runs it, as Docker's
    CMD-SHELL does: here the command is printf, which prints each word and a NUL."""
    argv = [shell, "sh", "-c"] if shell.endswith("busybox") else [shell, "-c"]
    script = shell_command(("printf", "%s\\0", *words))
    out = subprocess.run([*argv, script], capture_output=True, timeout=10, check=True).stdout
    return out.decode().split("\0")[:-1]


@pytest.mark.parametrize("shell", SHELLS)
def test_health_cmd_words_arrive_byte_exact(shell: str) -> None:
    assert _argv_through(shell, tuple(HOSTILE)) == HOSTILE


@settings(max_examples=60, deadline=None)
@given(st.lists(st.text(st.characters(blacklist_categories=("Cs",),
                                      blacklist_characters="\0"), max_size=12),
                min_size=1, max_size=5))
def test_health_cmd_words_arrive_byte_exact_property(words: list[str]) -> None:
    assert _argv_through("/bin/sh", tuple(words)) == words


# -- the verdict -------------------------------------------------------------------------

def container(status: str = "running", health: str | None = None, **state: Any
              ) -> dict[str, Any]:
    s: dict[str, Any] = {"Status": status, **state}
    if health is not None:
        s["Health"] = {"Status": health, "Log": [{"ExitCode": 1, "Output": "down\x1b[2J\n"}]}
    return {"State": s}


@pytest.mark.parametrize(("look", "alive", "verdict", "why"), [
    (None, True, Verdict.WAIT, "waiting for docker run to create the container"),
    (None, False, Verdict.FAILED, "docker run exited before the container started"),
    (container("created"), True, Verdict.WAIT, "the container is created"),
    (container("running"), True, Verdict.READY, "running (no healthcheck)"),
    (container("running", "starting"), True, Verdict.WAIT,
     "running, health: starting (last check exited 1: down [2J)"),
    (container("running", "healthy"), True, Verdict.READY, "healthy"),
    (container("running", "unhealthy"), True, Verdict.FAILED,
     "unhealthy (last check exited 1: down [2J)"),
    (container("exited", ExitCode=3), True, Verdict.FAILED,
     "the container exited with status 3"),
    (container("exited", ExitCode=137, OOMKilled=True), False, Verdict.FAILED,
     "the container exited with status 137 (killed: out of memory)"),
    (container("running", "healthy"), False, Verdict.FAILED,
     "docker run exited while the container was running"),
    (container("restarting"), True, Verdict.WAIT, "the container is restarting"),
], ids=["absent", "absent-run-gone", "created", "running", "starting", "healthy",
        "unhealthy", "exited", "oom", "run-gone", "restarting"])
def test_judge(look: dict[str, Any] | None, alive: bool, verdict: Verdict, why: str) -> None:
    j = judge(look, main_alive=alive)
    assert (j.verdict, j.why.split(" (its error")[0]) == (verdict, why)
    assert j.gone == (look is None)
    assert "\x1b" not in j.why


# -- the loop ----------------------------------------------------------------------------

class Script:
    """Each look returns the next item (an exception is raised); a fake clock advances
    by each sleep."""

    def __init__(self, *looks: Any, alive: list[bool] | None = None):
        self.looks = list(looks)
        self.alive = alive
        self.now = 0.0
        self.statuses: list[str] = []
        self.calls = 0

    def look(self, name: str) -> dict[str, Any] | None:
        self.calls += 1
        item = self.looks.pop(0) if len(self.looks) > 1 else self.looks[0]
        if isinstance(item, Exception):
            raise item
        return item  # type: ignore[no-any-return]

    def main_alive(self) -> bool:
        if self.alive is None:
            return True
        return self.alive.pop(0) if len(self.alive) > 1 else self.alive[0]

    def run(self, timeout: float = 10.0) -> Any:
        def sleep(s: float) -> None:
            self.now += s
        return wait("web", timeout, look=self.look, main_alive=self.main_alive,
                    status=self.statuses.append, clock=lambda: self.now, sleep=sleep)


def test_waits_through_starting_until_healthy() -> None:
    s = Script(None, container("created"), container("running", "starting"),
               container("running", "starting"), container("running", "healthy"))
    j = s.run()
    assert j.verdict is Verdict.READY and j.why == "healthy"
    assert s.calls == 5
    # one status line per change, not per look
    assert [t.split(": ", 1)[1].split(" (")[0] for t in s.statuses] == [
        "waiting for docker run to create the container", "the container is created",
        "running, health: starting"]
    assert s.statuses[0].endswith("(health.start_timeout 10s)")


def test_gives_up_at_start_timeout_and_says_what_it_waited_for() -> None:
    s = Script(container("running", "starting"))
    j = s.run(timeout=3.0)
    assert j.verdict is Verdict.FAILED
    assert j.why.startswith("not healthy within health.start_timeout (3.0s): running, "
                            "health: starting")
    assert 3.0 <= s.now <= 3.2


def test_a_daemon_that_does_not_answer_is_waited_for_within_the_bound() -> None:
    s = Script(EngineError("connection refused"), EngineError("connection refused"),
               container("running", "healthy"))
    assert s.run().verdict is Verdict.READY
    s = Script(EngineError("connection refused"))
    j = s.run(timeout=1.0)
    assert j.verdict is Verdict.FAILED and "does not answer (connection refused)" in j.why


def test_docker_run_gone_fails_at_once() -> None:
    s = Script(container("running", "starting"), None, alive=[True, False])
    j = s.run()
    assert j.verdict is Verdict.FAILED and j.gone
    assert s.now < 0.5


def test_unhealthy_fails_before_the_timeout() -> None:
    s = Script(container("running", "starting"), container("running", "unhealthy"))
    j = s.run(timeout=60.0)
    assert j.verdict is Verdict.FAILED and j.why.startswith("unhealthy")
    assert s.now < 1.0
