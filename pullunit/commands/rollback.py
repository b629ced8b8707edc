"""pullunit rollback APP [--to DIGEST]: back to an earlier good image, registry or not.

The choice is made to last: the digest is written to APP.lock.toml (source "rollback"), so
a restart or reboot keeps the app on it until `pullunit pin APP` follows the tag again.
"""

from __future__ import annotations

import argparse
import logging
from typing import Any

from .. import metrics, state
from ..activation import activate, locate
from ..applock import OPERATOR_WAIT, app_lock
from ..cli import config_dir
from ..config import load_app, resolve_app
from ..engine import LiteEngine
from ..errors import ExitCode, PullunitError
from ..hostconfig import load_host

log = logging.getLogger("pullunit")


def _choose(st: state.AppState, to: str | None) -> state.Entry:
    current_id = st.current.image_id if st.current else None
    if to is None:
        for e in st.history:
            if e.image_id != current_id:
                return e
        raise PullunitError(f"no earlier good image of {st.app} is recorded "
                            "(see 'pullunit status')", ExitCode.NOINPUT)
    want = to.strip()
    hits = [e for e in st.history
            if want in (e.digest, e.image_id, e.reference)
            or (len(want) >= 12 and any((x or "").removeprefix("sha256:").startswith(
                want.removeprefix("sha256:")) for x in (e.digest, e.image_id)))]
    unique = {e.image_id: e for e in hits}
    if len(unique) == 1:
        return next(iter(unique.values()))
    known = ", ".join(e.digest or e.image_id for e in st.history) or "none"
    why = "is ambiguous" if unique else "is not in the history"
    raise PullunitError(f"{to} {why}; known good images: {known}", ExitCode.USAGE)


def run(args: argparse.Namespace) -> int:
    app = load_app(resolve_app(config_dir(args), args.app))
    host = load_host(config_dir(args))
    restart = not args.no_restart
    if restart:
        # Everything the rollback needs is checked before anything changes: a rollback
        # that cannot restart the app must not leave it half switched (env file, state
        # and lock saying one image, the running container another).
        from .. import systemd

        systemd.check_restart(app.run_unit)
    with app_lock(app.name, lambda m: log.info("%s", m), timeout=OPERATOR_WAIT):
        st = state.load(app.name)
        target = _choose(st, args.to)
        engine = LiteEngine()
        image = locate(app, target.image_id, target.reference, inspect=engine.inspect,
                       api=_connect)
        if image is None:
            raise PullunitError(
                f"{target.reference} is no longer present locally"
                + ("" if app.pull.archive else " and [pull] archive is off"),
                ExitCode.NOINPUT, "pull it when the registry is back: pullunit pin, then "
                "systemctl restart " + app.pull_unit)
        done = activate(app, st, app.image.ref, image, digest=target.digest,
                        lock_source="rollback", engine=engine)
        metrics.record_rollback(host.metrics, app.name, done.state)
    print(f"{app.name}: rolled back to {done.reference}")
    if restart:
        from .. import systemd

        systemd.start(app.run_unit, restart=True)
        print(f"{app.name}: restarted {app.run_unit}")
    return 0


def _connect() -> Any:
    from .. import dockerapi

    return dockerapi.connect()
