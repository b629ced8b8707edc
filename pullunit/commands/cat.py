"""pullunit cat: an app's config as every command reads it, APP.toml with its drop-ins
merged, each value under the file that set it (as `systemctl cat` shows a unit and its
drop-ins). The text is valid TOML that decodes to the merged config.

It prints even a config that does not validate (that is when one wants to see it), then
reports the error and exits 78.
"""

from __future__ import annotations

import argparse
import datetime
import json
import logging
import sys

from .. import tomlwrite
from ..cli import config_dir
from ..config import app_name_of, load_merged, parse_app, resolve_app
from ..errors import ConfigError, ExitCode

log = logging.getLogger("pullunit")


def run(args: argparse.Namespace) -> int:
    path = resolve_app(config_dir(args), args.app)
    merged = load_merged(path)
    if args.json:
        doc = {
            "app": app_name_of(path),
            "files": [str(f) for f in merged.files],
            "config": merged.data,
            "sources": [{"key": list(k), "file": f} for k, _, f in merged.leaves()],
        }
        sys.stdout.write(json.dumps(doc, indent=2, default=_json_default) + "\n")
    else:
        head = "".join(f"# {f}\n" if str(f).isprintable() else f"# {str(f)!r}\n"
                       for f in merged.files)
        sys.stdout.write(head + "\n" + tomlwrite.dumps(merged.data, merged.source))
    sys.stdout.flush()
    try:
        parse_app(app_name_of(path), merged.data, path, origins=merged.origins,
                  dropins=merged.files[1:])
    except ConfigError as e:
        log.error("%s", e.message)
        return int(ExitCode.CONFIG)
    return 0


def _json_default(v: object) -> object:
    if isinstance(v, datetime.date | datetime.time):
        return v.isoformat()
    raise TypeError(type(v).__name__)
