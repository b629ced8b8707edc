"""Command line: one small _add_<cmd> per subcommand; the work lives in its own module.

Deep code raises PullunitError; main() alone turns it into a message and an exit code.
"""

from __future__ import annotations

import argparse
import functools
import gc
import logging
import os
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, NoReturn, TypeAlias

from . import __version__
from . import log as logsetup
from .errors import ExitCode, Interrupted, PullunitError

logger = logging.getLogger("pullunit")
_Sub: TypeAlias = "argparse._SubParsersAction[_Parser]"

EXIT_CODES_HELP = """\
exit status:
  0   success                            64  usage error
  65  wrong platform, digest mismatch,   66  image or tag not found
      verify command failed              68  registry host does not resolve
  69  registry or daemon unavailable,    70  internal error
      rate limited, stalled              72  a layer corrupt twice
  73  no space left on device            74  cannot write units or state
  75  temporary failure (lock)           76  TLS verification failed
  77  access denied / not permitted      78  configuration error; a
 80  update: not ready, rolled back          credential helper failing
 81  not ready (readiness gate)         130  interrupted (SIGINT)
 143  terminated (SIGTERM)                1  doctor/status: a check failed
"""


@functools.cache
def _columns() -> int:
    """The terminal's width as shutil.get_terminal_size() finds it: $COLUMNS, the
    terminal on stdout, else 80."""
    try:
        columns = int(os.environ.get("COLUMNS", ""))
    except ValueError:
        columns = 0
    if columns <= 0 and sys.__stdout__ is not None:
        try:
            columns = os.get_terminal_size(sys.__stdout__.fileno()).columns
        except (ValueError, OSError):
            columns = 0
    return columns if columns > 0 else 80


class _Help(argparse.RawDescriptionHelpFormatter):
    """argparse's formatter at the terminal's width, found without shutil: argparse makes
    a formatter for every argument it adds, and each of its own imports shutil (and with
    it bz2 and lzma) and asks the terminal again; a warm start prints no help at all."""

    def __init__(self, prog: str) -> None:
        super().__init__(prog, width=_columns() - 2)  # as argparse subtracts


class _Parser(argparse.ArgumentParser):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("formatter_class", _Help)
        super().__init__(*args, **kwargs)

    def error(self, message: str) -> NoReturn:
        self.print_usage(sys.stderr)
        self.exit(ExitCode.USAGE, f"{self.prog}: error: {message}\n")


def _config_parent() -> _Parser:
    p = _Parser(add_help=False)
    p.add_argument("--config-dir", metavar="DIR",
                   help="app configs (default: $PULLUNIT_CONFIG_DIR or /etc/pullunit)")
    return p


def _add_generate(sub: _Sub, parent: _Parser) -> None:
    p = sub.add_parser("generate", parents=[parent], help="render APP-pull.service and "
                       "APP.service from each config", allow_abbrev=False)
    p.add_argument("apps", nargs="*", metavar="APP_OR_FILE",
                   help="only these apps (names or .toml paths); default: all, and prune "
                   "units whose config was removed")
    p.add_argument("--output-dir", metavar="DIR", help="default: /etc/systemd/system")
    p.add_argument("--dry-run", action="store_true", help="print the units, write nothing")
    p.add_argument("--reload", action="store_true",
                   help="reload systemd after writing (D-Bus, needs root and systemd as PID 1)")
    p.add_argument("--enable", action="store_true",
                   help="enable the run units (implies --reload)")
    p.add_argument("--start", action="store_true",
                   help="start the run units, which pulls first (implies --reload)")
    p.set_defaults(func=_cmd("generate"))


def _add_validate(sub: _Sub, parent: _Parser) -> None:
    p = sub.add_parser("validate", parents=[parent], help="check configs, write nothing",
                       allow_abbrev=False)
    p.add_argument("files", nargs="*", metavar="APP_OR_FILE", help="default: every app")
    p.set_defaults(func=_cmd("validate"))


def _add_init(sub: _Sub, parent: _Parser) -> None:
    p = sub.add_parser("init", parents=[parent], help="write a minimal config for a new app",
                       allow_abbrev=False)
    p.add_argument("app", metavar="APP")
    p.add_argument("--image", required=True, metavar="REF", help="image reference with tag "
                   "and/or digest")
    p.set_defaults(func=_cmd("init"))


def _add_cat(sub: _Sub, parent: _Parser) -> None:
    p = sub.add_parser("cat", parents=[parent], help="print APP's config with its drop-ins "
                       "merged, each value under the file that set it", allow_abbrev=False)
    p.add_argument("app", metavar="APP_OR_FILE")
    p.add_argument("--json", action="store_true", help="{app, files, config, sources: "
                   "[{key, file}]} on stdout")
    p.set_defaults(func=_cmd("cat"))


def _cmd(name: str) -> Callable[[argparse.Namespace], int]:
    """Import a command module only when it runs: `pullunit --help` stays fast and the
    Docker SDK is loaded only by the commands that talk to Docker."""
    def run(args: argparse.Namespace) -> int:
        import importlib

        module = importlib.import_module(f"pullunit.commands.{name}")
        _started()
        result: int = module.run(args)
        return result
    return run


# Start-up makes tens of thousands of objects (modules, classes, functions) that live as
# long as the process. The cyclic collector walking them again and again while they are
# being made was about a third of a warm start (benchmarks/README.md). So main() pauses it
# until the command's modules are imported, then freezes what start-up made (collections
# skip it from then on, and so does the one at exit) and collects as usual: a pull that
# waits in backoff for days still collects its own garbage.
_paused = False


def _pause_collector() -> None:
    global _paused
    if gc.isenabled():
        gc.disable()
        _paused = True


def _started() -> None:
    global _paused
    if _paused:
        _paused = False
        gc.freeze()
        gc.enable()


def _add_pull(sub: _Sub, parent: _Parser) -> None:
    p = sub.add_parser("pull", parents=[parent], help="pull APP's image with retries and "
                       "backoff, then tell systemd it is ready (what APP-pull.service runs)",
                       allow_abbrev=False)
    p.add_argument("app", metavar="APP")
    p.add_argument("--json", action="store_true", help="print the outcome as JSON on stdout")
    p.set_defaults(func=_cmd("pull"))


def _add_status(sub: _Sub, parent: _Parser) -> None:
    p = sub.add_parser("status", parents=[parent], help="both units' state, the image in use "
                       "and its history, and for a failed pull its cause and fix",
                       allow_abbrev=False)
    p.add_argument("apps", nargs="*", metavar="APP", help="default: every app")
    p.add_argument("--json", action="store_true", help="stable machine-readable output")
    p.set_defaults(func=_cmd("status"))


def _add_doctor(sub: _Sub, parent: _Parser) -> None:
    p = sub.add_parser("doctor", parents=[parent], help="run the incident checklist against "
                       "an app's image, credentials and daemon; changes nothing",
                       allow_abbrev=False)
    p.add_argument("target", nargs="?", metavar="APP|IMAGE_REF")
    p.add_argument("--json", action="store_true", help="one object per target: {app, target, "
                   "platform, ok, checks: [{check, status, detail, hint}], host, repeat} "
                   "(docs/doctor.md)")
    p.add_argument("--repeat", type=_positive_int, default=1, metavar="N",
                   help="run the network checks N times and say which fail now and then "
                   "(flapping) and which always (steady)")
    p.add_argument("--interval", default="1s", metavar="TIME",
                   help="between the rounds of --repeat (a systemd time span; default 1s)")
    p.add_argument("--compare", nargs="+", metavar="FILE",
                   help="compare the host fingerprints in files saved from 'doctor --json' "
                   "on several hosts: what differs, most suspicious first; checks nothing")
    p.set_defaults(func=_cmd("doctor"))


def _positive_int(text: str) -> int:
    try:
        n = int(text)
    except ValueError:
        n = 0
    if not 1 <= n <= 1000:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number from 1 to 1000")
    return n


def _add_pin(sub: _Sub, parent: _Parser) -> None:
    p = sub.add_parser("pin", parents=[parent], help="resolve tags to digests into "
                       "APP.lock.toml", allow_abbrev=False)
    p.add_argument("apps", nargs="*", metavar="APP", help="default: every app")
    p.add_argument("--check", action="store_true",
                   help="exit 1 when a lock is missing or stale; write nothing")
    p.set_defaults(func=_cmd("pin"))


def _add_rollback(sub: _Sub, parent: _Parser) -> None:
    p = sub.add_parser("rollback", parents=[parent], help="switch APP to the previous (or "
                       "named) good digest and restart it; works with the registry down",
                       allow_abbrev=False)
    p.add_argument("app", metavar="APP")
    p.add_argument("--to", metavar="DIGEST", help="a digest from 'pullunit status APP'")
    p.add_argument("--no-restart", action="store_true",
                   help="only write the env file and state; do not restart APP.service")
    p.set_defaults(func=_cmd("rollback"))


def _add_prefetch(sub: _Sub, parent: _Parser) -> None:
    p = sub.add_parser("prefetch", parents=[parent], help="pull newer digests for policy="
                       "always apps without restarting them", allow_abbrev=False)
    p.add_argument("apps", nargs="*", metavar="APP", help="default: every policy=always app")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=_cmd("prefetch"))


def _add_metrics(sub: _Sub, parent: _Parser) -> None:
    p = sub.add_parser("metrics", parents=[parent], help="print every app's Prometheus "
                       "metrics (what node_exporter's textfile collector reads)",
                       allow_abbrev=False)
    p.add_argument("apps", nargs="*", metavar="APP", help="default: every app")
    p.set_defaults(func=_cmd("metrics"))



def _add_ready(sub: _Sub, parent: _Parser) -> None:
    p = sub.add_parser("ready", parents=[parent], help="wait until APP's container runs and "
                       "is healthy (what APP.service's ExecStartPost= runs)",
                       allow_abbrev=False)
    p.add_argument("app", metavar="APP")
    p.add_argument("--container", metavar="NAME", help="default: the config's run.name")
    p.add_argument("--start-timeout", metavar="DURATION",
                   help="default: the config's health.start_timeout")
    p.add_argument("--stop-timeout", metavar="DURATION", help="grace period when stopping "
                   "a container that failed (default: the config's run.stop_timeout)")
    p.set_defaults(func=_cmd("ready"))


def _add_update(sub: _Sub, parent: _Parser) -> None:
    p = sub.add_parser("update", parents=[parent], help="pull the tag's new digest, switch "
                       "APP to it, and roll back when it does not become ready",
                       allow_abbrev=False)
    p.add_argument("apps", nargs="*", metavar="APP", help="default: every app")
    p.add_argument("--to", metavar="TAG|DIGEST", help="this tag or digest of the app's "
                   "repository instead of the configured tag (one APP only)")
    p.add_argument("--auto", action="store_true", help="only apps with [update] auto = true, "
                   "stopping at the first rollback (what pullunit-update.timer runs)")
    p.add_argument("--dry-run", action="store_true",
                   help="say what would change; pull, write and restart nothing")
    p.add_argument("--no-rollback", action="store_true",
                   help="leave a new image that does not become ready in place")
    p.add_argument("--json", action="store_true", help="one object per app on stdout")
    p.set_defaults(func=_cmd("update"))


_COMMANDS: dict[str, Callable[[_Sub, _Parser], None]] = {
    "generate": _add_generate, "validate": _add_validate, "init": _add_init, "pull": _add_pull,
    "status": _add_status, "doctor": _add_doctor, "pin": _add_pin, "rollback": _add_rollback,
    "prefetch": _add_prefetch, "metrics": _add_metrics, "update": _add_update,
    "ready": _add_ready, "cat": _add_cat,
}


def build_parser(command: str | None = None) -> argparse.ArgumentParser:
    """The command line; given a known command, only what parsing that command needs
    (a warm start builds one sub-parser, not nine: argparse is not cheap to build)."""
    parser = _Parser(prog="pullunit", description="Pull images politely, run containers under "
                     "systemd, never crash-loop.", epilog=EXIT_CODES_HELP, allow_abbrev=False)
    parser.add_argument("--version", action="version", version=f"pullunit {__version__}")
    parser.add_argument("--debug", action="store_true",
                        help="debug logging and tracebacks (also SYSTEMD_LOG_LEVEL=debug)")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True,
                                parser_class=_Parser)
    parent = _config_parent()
    for add in [_COMMANDS[command]] if command in _COMMANDS else _COMMANDS.values():
        add(sub, parent)
    return parser


def _command_in(argv: Sequence[str]) -> str | None:
    """The subcommand argv names: its first word that is not an option (no option of
    pullunit's own takes a value)."""
    return next((a for a in argv if not a.startswith("-")), None)


def main(argv: Sequence[str] | None = None) -> int:
    _pause_collector()
    try:
        return _main(argv)
    finally:
        _started()  # whatever happened before the command ran


def _main(argv: Sequence[str] | None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    parser = build_parser(_command_in(argv))
    args = parser.parse_args(argv)
    logsetup.setup(debug=args.debug)
    try:
        return int(args.func(args))
    except PullunitError as e:
        logger.error("%s", e.message)
        if e.hint:
            logger.info("hint: %s", e.hint)
        return int(e.exit_code)
    except Interrupted as e:
        logger.error("stopped by %s; state was left as it was", e.signame)
        return int(e.exit_code)
    except KeyboardInterrupt:
        logger.error("Interrupted")
        return int(ExitCode.SIGINT)
    except BrokenPipeError:
        return int(ExitCode.OK)
    except Exception as e:  # a bug: say so briefly; the traceback is for --debug
        logger.debug("internal error", exc_info=True)
        logger.error("internal error: %s: %s (run with --debug for a traceback)",
                     type(e).__name__, e)
        return int(ExitCode.SOFTWARE)


def config_dir(args: argparse.Namespace) -> Path:
    from .config import config_dir_from_env

    return config_dir_from_env(getattr(args, "config_dir", None))
