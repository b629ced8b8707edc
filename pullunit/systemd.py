"""The systemd edge: a small typed wrapper over pystemd (D-Bus).

pystemd speaks bytes (b"ActiveState") and raises its own exception types; nothing past
this module sees either. pystemd is imported lazily: the generator and `pullunit pull`
never need it.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass
from typing import Any

from .errors import ExitCode, PullunitError


def booted() -> bool:
    """sd_booted(3): is systemd PID 1 here?"""
    return os.path.isdir("/run/systemd/system")


def _require_systemd(action: str, need_root: bool) -> None:
    if not booted():
        raise PullunitError(f"cannot {action}: systemd is not running as PID 1 here",
                            ExitCode.UNAVAILABLE, "run on the host that runs the units")
    if need_root and os.geteuid() != 0:
        raise PullunitError(f"cannot {action}: must be root", ExitCode.NOPERM,
                            "run it with sudo")


def _error(action: str, exc: Exception) -> PullunitError:
    text = str(exc) or type(exc).__name__
    if "AccessDenied" in type(exc).__name__ or "access denied" in text.lower():
        return PullunitError(f"cannot {action}: access denied by systemd ({text})",
                             ExitCode.NOPERM)
    return PullunitError(f"cannot {action}: {text}", ExitCode.UNAVAILABLE)


def _b(names: Iterable[str]) -> list[bytes]:
    return [n.encode() for n in names]


def reload() -> None:
    _require_systemd("reload systemd", need_root=True)
    from pystemd.systemd1 import Manager

    try:
        with Manager() as m:
            m.Manager.Reload()
    except Exception as e:
        raise _error("reload systemd", e) from e


def enable(units: list[str]) -> None:
    _require_systemd("enable units", need_root=True)
    from pystemd.systemd1 import Manager

    try:
        with Manager() as m:
            m.Manager.EnableUnitFiles(_b(units), False, True)
            m.Manager.Reload()
    except Exception as e:
        raise _error(f"enable {' '.join(units)}", e) from e


def start(unit: str, *, restart: bool = False, mode: str = "replace") -> None:
    verb = "restart" if restart else "start"
    _require_systemd(f"{verb} {unit}", need_root=True)
    from pystemd.systemd1 import Manager

    try:
        with Manager() as m:
            if restart:
                m.Manager.RestartUnit(unit.encode(), mode.encode())
            else:
                m.Manager.StartUnit(unit.encode(), mode.encode())
    except Exception as e:
        raise _error(f"{verb} {unit}", e) from e


def restart(unit: str, *, timeout: float, poll: float = 0.2,
            clock: Callable[[], float] = time.monotonic,
            sleep: Callable[[float], None] = time.sleep) -> UnitState:
    """Restart `unit` over D-Bus and wait until systemd is done with that job: for a run
    unit with the readiness gate, until the gate passed or failed. Returns the unit's
    state then; raises PullunitError (NOT_READY) when the job outlives `timeout`.

    The job is followed by its id: a restart job becomes the start job with the same id,
    and an automatic restart after a failure is a new job, not a continuation of ours."""
    verb = f"restart {unit}"
    _require_systemd(verb, need_root=True)
    from pystemd.systemd1 import Manager, Unit

    try:
        with Manager() as m:
            job = _s(m.Manager.RestartUnit(unit.encode(), b"replace"))
        ours = int(job.rsplit("/", 1)[-1])
        deadline = clock() + timeout
        with Unit(unit.encode()) as u:
            while int(u.Unit.Job[0]) == ours:
                if clock() >= deadline:
                    raise PullunitError(f"{unit} was still starting after {timeout:.0f}s",
                                        ExitCode.NOT_READY)
                sleep(poll)
    except PullunitError:
        raise
    except Exception as e:
        raise _error(verb, e) from e
    return unit_state(unit)


def check_restart(unit: str) -> None:
    """Raise now the error a later start(unit, restart=True) would raise for want of
    systemd, root, the system bus or the unit itself, without changing anything: a
    caller checks before it changes what it could not then finish."""
    _require_systemd(f"restart {unit}", need_root=True)
    load_state = unit_state(unit).load_state
    if load_state != "loaded":
        raise PullunitError(f"cannot restart {unit}: systemd has not loaded it "
                            f"(LoadState={load_state})", ExitCode.UNAVAILABLE,
                            "'pullunit generate --reload' writes and loads the units")


@dataclass(frozen=True)
class UnitState:
    name: str
    load_state: str
    active_state: str
    sub_state: str
    result: str
    exec_main_status: int
    n_restarts: int
    status_text: str

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


def _s(v: Any) -> str:
    return v.decode(errors="replace") if isinstance(v, bytes) else str(v)


def unit_state(unit: str) -> UnitState:
    """One service's state as `systemctl show` would report it."""
    _require_systemd(f"read the state of {unit}", need_root=False)
    from pystemd.systemd1 import Manager, Unit

    try:
        with Manager() as m:
            m.Manager.LoadUnit(unit.encode())  # so a never-started unit has an object too
        with Unit(unit.encode()) as u:
            svc = getattr(u, "Service", None)
            return UnitState(
                name=unit,
                load_state=_s(u.Unit.LoadState),
                active_state=_s(u.Unit.ActiveState),
                sub_state=_s(u.Unit.SubState),
                result=_s(svc.Result) if svc is not None else "",
                exec_main_status=int(svc.ExecMainStatus) if svc is not None else 0,
                n_restarts=int(svc.NRestarts) if svc is not None else 0,
                status_text=_s(svc.StatusText) if svc is not None else "",
            )
    except PullunitError:
        raise
    except Exception as e:
        raise _error(f"read the state of {unit}", e) from e
