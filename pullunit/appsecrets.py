"""`[run.secrets]`: files handed to the container without passing through its environment,
its labels, the unit file or pullunit's output.

systemd loads each file as a credential of APP.service (`LoadCredential=NAME:PATH`, or
`LoadCredentialEncrypted=` for a file made by `systemd-creds encrypt`) into
/run/credentials/APP.service/, a non-swappable ramfs only root can read, which
exists while the unit runs. `docker run` bind-mounts each one read-only at
/run/secrets/NAME. Only the path of a secret is in the unit; its contents reach the
container through the mount alone. Pure logic: the parser, the unit lines, the mount.
"""

from __future__ import annotations

import os
import re
import stat
from dataclasses import dataclass
from pathlib import Path

from .configvalues import Parser, Where, abs_path, boolean, strict_table, type_name
from .escape import UnsafeValueError, path_value

# systemd puts a unit's credentials in /run/credentials/UNIT (systemd.exec(5),
# $CREDENTIALS_DIRECTORY, the %d specifier) since v247; dockerd, in the host's mount
# namespace, sees that mount as long as the unit runs.
CREDENTIALS_ROOT = "/run/credentials"
TARGET_DIR = "/run/secrets"
# systemd: a credential name is a valid file name and fd name (no '/', no ':', printable
# ASCII, at most 255 bytes, not "." or ".."). Narrower here: it is also a word of docker's
# comma-separated --mount value and a path in the container, so no ',', '=', quotes,
# white space or leading dot.
NAME_MAX = 255
_NAME = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]*", re.ASCII)
# systemd's exit status of a process whose credentials it could not set up (EXIT_CREDENTIALS).
EXIT_CREDENTIALS = 243
# systemd 252 refuses a credential over CREDENTIAL_SIZE_MAX (1 MiB) and fails the start.
SIZE_MAX = 1024 * 1024


@dataclass(frozen=True)
class Secret:
    name: str
    path: Path
    encrypted: bool = False

    @property
    def target(self) -> str:
        return f"{TARGET_DIR}/{self.name}"

    def directive(self) -> str:
        """The [Service] line that makes systemd load it."""
        key = "LoadCredentialEncrypted" if self.encrypted else "LoadCredential"
        return f"{key}={self.name}:{path_value(str(self.path))}"

    def mount(self, run_unit: str) -> str:
        """docker run --mount value: the credential, read-only, at /run/secrets/NAME."""
        return (f"type=bind,source={CREDENTIALS_ROOT}/{run_unit}/{self.name},"
                f"target={self.target},readonly")


def secret_name(name: str, where: Where) -> str:
    if not _NAME.fullmatch(name) or len(name) > NAME_MAX:
        raise where.error(f"invalid secret name {name!r}; use 1 to {NAME_MAX} letters, "
                          "digits, '_', '.', '-', starting with a letter, digit or '_' "
                          "(it names the file /run/secrets/NAME)")
    return name


def _secret_path(value: object, where: Where) -> Path:
    path = abs_path(value, where)
    try:
        path_value(str(path))
    except UnsafeValueError as e:
        raise where.error(f"path {str(path)!r} {e}") from None
    return path


_ENTRY: dict[str, Parser] = {"path": _secret_path, "encrypted": boolean}


def secrets_table(value: object, where: Where) -> tuple[Secret, ...]:
    """NAME = "/path" or NAME = { path = "/path", encrypted = true }."""
    if not isinstance(value, dict):
        raise where.error(f"expected a table of NAME = \"/path/to/file\", got {type_name(value)}")
    out = []
    for name, raw in value.items():
        w = where.child(name)
        secret_name(name, w)
        if isinstance(raw, dict):
            entry = strict_table(raw, _ENTRY, w, f"run.secrets.{name}")
            if "path" not in entry:
                raise w.child("path").error("is required")
            out.append(Secret(name, entry["path"], entry.get("encrypted", False)))
        elif isinstance(raw, str):
            out.append(Secret(name, _secret_path(raw, w)))
        else:
            raise w.error(f"expected a path or a table {{ path = ..., encrypted = true }}, "
                          f"got {type_name(raw)}")
    return tuple(out)


def check_volumes(secrets: tuple[Secret, ...], volumes: tuple[str, ...], where: Where) -> None:
    """A volume at /run/secrets/NAME would make docker refuse to start the container
    ("Duplicate mount point"); say so now, naming both."""
    targets = {s.target: s.name for s in secrets}
    for i, v in enumerate(volumes):
        dest = os.path.normpath(v.split(":")[1])
        if dest in targets:
            raise where.child("volumes").child(i).error(
                f"destination {dest} is where secret {targets[dest]!r} is mounted",
                "rename the secret or move the volume")


def file_warnings(secret: Secret) -> list[str]:
    """What `validate` says about a secret file on this host (no error: the file may be
    put there after generate, by configuration management)."""
    try:
        st = os.stat(secret.path)
    except FileNotFoundError:
        return [f"{secret.path} does not exist: the app's unit will fail to start "
                "(status 243/CREDENTIALS) until it does"]
    except OSError as e:
        return [f"cannot look at {secret.path}: {e.strerror}"]
    if stat.S_ISDIR(st.st_mode):
        return [f"{secret.path} is a directory; systemd would load its files under other "
                f"names and /run/secrets/{secret.name} would not exist: name a file"]
    out = []
    if stat.S_ISREG(st.st_mode):
        if st.st_mode & stat.S_IROTH:
            out.append(f"{secret.path} is readable by every user (mode "
                       f"{stat.S_IMODE(st.st_mode):04o}); chmod o-r it")
        if st.st_size > SIZE_MAX:
            out.append(f"{secret.path} is {st.st_size} bytes; systemd loads at most "
                       f"{SIZE_MAX} bytes per credential and would fail the start")
    return out


def start_failure(secrets: tuple[Secret, ...], exec_main_status: object) -> str | None:
    """What `status` says when systemd failed the run unit before docker run: its
    "Failed to set up credentials" is in the journal, which few read first."""
    if not secrets or exec_main_status != EXIT_CREDENTIALS:
        return None
    files = ", ".join(str(s.path) for s in secrets)
    return ("systemd could not load [run.secrets] (status 243/CREDENTIALS): each file must "
            f"exist and be at most 1 MiB when the unit starts: {files}")
