"""pullunit init: write a minimal, valid config for a new app. Never overwrites."""

from __future__ import annotations

import argparse
import logging
import os
import tempfile

import tomli_w

from ..cli import config_dir
from ..config import load_app, validate_app_name
from ..errors import ConfigError, ExitCode, PullunitError
from ..fsutil import CannotWrite
from ..reference import BadReference, parse_reference

log = logging.getLogger("pullunit")


def run(args: argparse.Namespace) -> int:
    cfg = config_dir(args)
    path = cfg / f"{args.app}.toml"
    try:
        validate_app_name(args.app, str(path))
        ref = parse_reference(args.image)
    except ConfigError as e:
        raise PullunitError(e.message, ExitCode.USAGE) from e
    except BadReference as e:
        raise PullunitError(f"--image: {e}", ExitCode.USAGE) from e
    text = tomli_w.dumps({"image": {"ref": str(ref), "policy": "missing"},
                          "unit": {"description": f"{args.app} ({ref.repository})"}})
    text = f"# pullunit app config; see pullunit.toml(5). Then run: pullunit generate\n{text}"
    try:
        cfg.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=cfg)
        with os.fdopen(fd, "w") as f:
            f.write(text)
        os.chmod(tmp, 0o644)
        try:
            os.link(tmp, path)  # fails if the file exists: no window in which to clobber it
        finally:
            os.unlink(tmp)
    except FileExistsError:
        raise PullunitError(f"{path} already exists; not overwriting it",
                            ExitCode.CANTCREAT) from None
    except OSError as e:
        raise CannotWrite(path, e) from e
    load_app(path, dropins=False)  # what init writes must itself be valid
    print(path)
    return 0
