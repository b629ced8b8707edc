"""The app's health, as pure logic: the `docker run` healthcheck flags from [health], and
the readiness verdict on a container from what Docker reports about it.

Nothing here does I/O: `gate.py` feeds `judge` with the engine's answers, and render.py
puts `docker_flags` on the run unit's command line.
"""

from __future__ import annotations

import enum
import shlex
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from .durations import human

if TYPE_CHECKING:  # the gate imports this module at every start: not the config schema
    from .config import HealthConfig


def go_duration(seconds: float) -> str:
    """A Go time.Duration string (what --health-interval and friends parse): exact to the
    millisecond, which is also Docker's smallest healthcheck unit."""
    ms = round(seconds * 1000)
    return f"{ms // 1000}s" if ms % 1000 == 0 else f"{ms}ms"


def shell_command(words: tuple[str, ...]) -> str:
    """--health-cmd takes one shell string (Docker runs it as CMD-SHELL: /bin/sh -c). Each
    word is quoted for a POSIX shell, so the command gets exactly these words back, and
    `exec` lets its exit status be the check's."""
    return "exec " + shlex.join(words)


def docker_flags(health: HealthConfig) -> list[str]:
    """`docker run` options for the healthcheck; none leaves the image's HEALTHCHECK as it
    is (Docker merges each option given here over the image's own)."""
    flags: list[str] = []
    if health.cmd:
        flags += ["--health-cmd", shell_command(health.cmd)]
    for flag, value in (("--health-interval", health.interval),
                        ("--health-timeout", health.timeout),
                        ("--health-start-period", health.start_period)):
        if value is not None:
            flags.append(f"{flag}={go_duration(value)}")
    if health.retries is not None:
        flags.append(f"--health-retries={health.retries}")
    return flags


class Verdict(enum.StrEnum):
    WAIT = "wait"  # not there yet: keep asking
    READY = "ready"  # running, and healthy when it has a healthcheck
    FAILED = "failed"  # it will not get there: exited, unhealthy, or its docker run died


@dataclass(frozen=True)
class Judgement:
    verdict: Verdict
    why: str  # one line for StatusText and the journal
    health: str | None = None  # Docker's State.Health.Status, when it has a healthcheck
    gone: bool = False  # there was no container to look at


def _clean(text: str, limit: int = 200) -> str:
    """Text from inside a container, made fit for one status line."""
    text = "".join(c if c.isprintable() else " " for c in text)
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


def last_check(state: dict[str, Any]) -> str:
    """The last healthcheck's exit code and output, as Docker recorded them."""
    log = ((state.get("Health") or {}).get("Log")) or []
    if not log or not isinstance(log[-1], dict):
        return ""
    entry = log[-1]
    output = _clean(str(entry.get("Output") or ""))
    text = f"last check exited {entry.get('ExitCode')}"
    return f"{text}: {output}" if output else text


def exited(state: dict[str, Any]) -> str:
    """Why a container that is no longer running stopped, from State."""
    text = f"the container exited with status {state.get('ExitCode')}"
    if state.get("OOMKilled"):
        text += " (killed: out of memory)"
    error = _clean(str(state.get("Error") or ""))
    return f"{text}: {error}" if error else text


def judge(container: dict[str, Any] | None, *, main_alive: bool) -> Judgement:
    """The verdict on one look at the container (`GET /containers/NAME/json`, None when
    there is no such container) and on whether the unit's `docker run` still runs."""
    if container is None:
        if main_alive:
            return Judgement(Verdict.WAIT, "waiting for docker run to create the container",
                             gone=True)
        return Judgement(Verdict.FAILED, "docker run exited before the container started "
                         "(its error is in the unit's journal)", gone=True)
    state = container.get("State") or {}
    status = str(state.get("Status") or "")
    health = (state.get("Health") or {}).get("Status")
    health = str(health) if health else None
    if status in ("exited", "dead", "removing"):
        return Judgement(Verdict.FAILED, exited(state), health)
    if not main_alive:
        return Judgement(Verdict.FAILED, "docker run exited while the container was "
                         f"{status}", health)
    if status != "running":  # created, restarting, paused
        return Judgement(Verdict.WAIT, f"the container is {status or 'being created'}",
                         health)
    if health is None or health == "none":
        return Judgement(Verdict.READY, "running (no healthcheck)", None)
    if health == "healthy":
        return Judgement(Verdict.READY, "healthy", health)
    if health == "unhealthy":
        check = last_check(state)
        return Judgement(Verdict.FAILED, "unhealthy" + (f" ({check})" if check else ""),
                         health)
    check = last_check(state)
    return Judgement(Verdict.WAIT, "running, health: " + health
                     + (f" ({check})" if check else ""), health)


def timed_out(last: Judgement, start_timeout: float) -> str:
    """The reason when start_timeout passed: what it was still waiting for."""
    goal = "healthy" if last.health else "running"
    return (f"not {goal} within health.start_timeout ({human(start_timeout)}): "
            f"{last.why}")
