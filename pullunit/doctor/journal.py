"""For an app whose pull failed: dockerd's own words about it, the lines of its journal
(`journalctl -u docker.service`) since shortly before the failure that name the image's
registry or repository (field guide 2.3 and 12.5: the daemon logs are often the most
revealing). Read-only and bounded like every check."""

from __future__ import annotations

import json
import shutil
import subprocess
import time

from .. import paths, state
from .context import Context
from .model import Check, Status, short

BEFORE = 60.0  # seconds before the recorded failure: the attempt that failed began earlier
SHOWN = 8  # lines at most, the newest


def daemon_log(ctx: Context) -> Check:
    assert ctx.ref is not None
    app = ctx.target.app if ctx.target is not None else None
    if app is None:
        return Check("daemon_log", Status.SKIP, "an image reference, not an app: no failed "
                     "pull to look up")
    try:  # read, not state.load: that would move a corrupt file aside, and doctor only looks
        failure = state.from_json(app, json.loads(paths.state_file(app).read_text())
                                  ).last_failure
    except FileNotFoundError:
        failure = None
    except (OSError, ValueError, KeyError, TypeError) as e:
        return Check("daemon_log", Status.SKIP, f"cannot read the state of {app}: "
                     f"{short(str(e))}")
    if failure is None:
        return Check("daemon_log", Status.SKIP, f"the last pull of {app} did not fail")
    journalctl = shutil.which("journalctl")
    if journalctl is None:
        return Check("daemon_log", Status.SKIP, "journalctl is not installed")
    since = int(failure.at - BEFORE)
    argv = [journalctl, "--unit", "docker.service", "--since", f"@{since}", "--no-pager",
            "--quiet", "--output", "short-iso"]
    if ctx.options.journal_dir is not None:
        argv += ["--directory", str(ctx.options.journal_dir)]
    try:
        proc = subprocess.run(argv, capture_output=True, text=True, errors="replace",
                              timeout=ctx.deadline.remaining(), stdin=subprocess.DEVNULL)
    except (OSError, subprocess.TimeoutExpired, TimeoutError) as e:
        return Check("daemon_log", Status.SKIP, f"journalctl: {short(str(e))}")
    if proc.returncode != 0:
        why = proc.stderr.strip().splitlines()[0] if proc.stderr.strip() else \
            f"exit {proc.returncode}"
        return Check("daemon_log", Status.SKIP, f"journalctl: {short(why)}")
    names = {ctx.registry, ctx.api_host, ctx.ref.remote_path}
    lines = [line for line in proc.stdout.splitlines()
             if any(n and n in line for n in names)]
    when = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(since))
    if not lines:
        return Check("daemon_log", Status.PASS, f"no line of docker.service's journal since "
                     f"{when} names {ctx.registry} or {ctx.ref.remote_path} (pullunit's own "
                     f"record: {failure.cls})")
    shown = lines[-SHOWN:]
    more = f" (the last {SHOWN} of {len(lines)})" if len(lines) > SHOWN else ""
    return Check("daemon_log", Status.WARN,
                 f"dockerd since {when}{more}: " + " | ".join(short(x, 300) for x in shown),
                 f"the daemon's own account of the failed pull of {app} ({failure.cls}); "
                 f"'journalctl -u docker --since @{since}' shows everything")
