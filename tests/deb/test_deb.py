"""The built .deb: lintian-clean, the right files with the right modes, dependencies on
Debian 12 packages only, man pages that render without warnings and agree with
`pullunit --help`, and a generator that works from the package's own layout."""

from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from pullunit import cli
from pullunit.errors import ExitCode
from pullunit.paths import MARKER_PREFIX

from .debbuild import REPO, Built

DIST = "usr/lib/python3/dist-packages"
GENERATOR = "usr/lib/systemd/system-generators/pullunit-generator"
MAN_PAGES = {"pullunit.1": "usr/share/man/man1/pullunit.1.gz",
             "pullunit.toml.5": "usr/share/man/man5/pullunit.toml.5.gz",
             "pullunit-generator.8": "usr/share/man/man8/pullunit-generator.8.gz"}


def _run(*cmd: str | Path, **kw: object) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(c) for c in cmd], capture_output=True, text=True,
                          timeout=300, **kw)  # type: ignore[call-overload]


def _require(tool: str) -> None:
    if shutil.which(tool) is None:
        pytest.fail(f"{tool} is not installed (scripts/setup installs it)", pytrace=False)


@pytest.fixture(scope="module")
def contents(built: Built) -> dict[str, tuple[str, str]]:
    """path (without leading ./ or /) -> (mode string, symlink target or '')."""
    out = _run("dpkg-deb", "-c", built.deb)
    assert out.returncode == 0, out.stderr
    files = {}
    for line in out.stdout.splitlines():
        fields = line.split(None, 5)
        mode, name = fields[0], fields[5]
        target = ""
        if " -> " in name:
            name, target = name.split(" -> ", 1)
        files[name.removeprefix("./").rstrip("/")] = (mode, target)
    files.pop("", None)
    return files


@pytest.fixture(scope="module")
def unpacked(built: Built, tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("deb-root")
    out = _run("dpkg-deb", "-x", built.deb, root)
    assert out.returncode == 0, out.stderr
    return root


def _field(built: Built, name: str) -> str:
    out = _run("dpkg-deb", "-f", built.deb, name)
    assert out.returncode == 0, out.stderr
    return out.stdout.strip()


def _subparsers() -> dict[str, argparse.ArgumentParser]:
    for action in cli.build_parser()._actions:
        if isinstance(action, argparse._SubParsersAction):
            return dict(action.choices)
    raise AssertionError("no subcommands")


# ---------------------------------------------------------------------------- lintian


def test_lintian_reports_no_errors_and_no_warnings(built: Built) -> None:
    _require("lintian")
    out = _run("lintian", "--display-info", "--show-overrides", "--fail-on",
               "error,warning", built.deb)
    report = out.stdout + out.stderr
    print(f"make deb: {built.seconds:.1f}s, {built.deb.stat().st_size} bytes\n{report}")
    tags = [line for line in out.stdout.splitlines() if re.match(r"^[EW]: ", line)]
    assert not tags, report
    assert out.returncode == 0, report


# --------------------------------------------------------------------------- metadata


def test_package_name_version_and_architecture(built: Built) -> None:
    assert built.deb.name == f"pullunit_{built.version}_all.deb"
    assert _field(built, "Package") == "pullunit"
    assert _field(built, "Version") == built.version
    assert _field(built, "Architecture") == "all"


def test_depends_only_on_debian_12_packages(built: Built) -> None:
    depends = [d.strip() for d in _field(built, "Depends").split(",")]
    assert "docker.io | docker-ce" in depends
    names = {re.sub(r"\s*\(.*\)$", "", d) for d in depends} - {"docker.io | docker-ce"}
    assert names == {"python3-pystemd", "python3-docker", "python3-jinja2",
                     "python3-tomli-w", "python3-sdnotify", "python3-prometheus-client",
                     "python3:any"}
    assert _field(built, "Pre-Depends") == ""
    # node_exporter reads the metrics pullunit writes; pullunit works without it
    assert _field(built, "Recommends") == "prometheus-node-exporter"


# --------------------------------------------------------------------------- contents


def test_commands_and_generator(contents: dict[str, tuple[str, str]]) -> None:
    assert contents["usr/bin/pullunit"][0] == "-rwxr-xr-x"
    assert contents[GENERATOR][0] == "-rwxr-xr-x"
    assert "usr/bin/pullunit-generator" not in contents


def test_every_module_is_installed_without_bytecode(
        contents: dict[str, tuple[str, str]]) -> None:
    for src in sorted((REPO / "pullunit").rglob("*.py")):
        rel = src.relative_to(REPO).as_posix()
        assert f"{DIST}/{rel}" in contents, f"{rel} is not in the package"
    assert f"{DIST}/pullunit/templates/__init__.py" in contents
    assert not [p for p in contents if "__pycache__" in p or p.endswith(".pyc")]


def test_templates_live_in_usr_share_once(contents: dict[str, tuple[str, str]]) -> None:
    templates = sorted(p.name for p in (REPO / "templates").glob("*.j2"))
    assert templates
    for name in templates:
        assert contents[f"usr/share/pullunit/templates/{name}"][0].startswith("-")
        mode, target = contents[f"{DIST}/pullunit/templates/{name}"]
        assert mode.startswith("l")
        assert target == f"../../../../../share/pullunit/templates/{name}"
    shipped = {Path(p).name for p in contents if p.startswith("usr/share/pullunit/templates/")
               and p.endswith(".j2")}
    assert shipped == set(templates)


def test_every_static_unit_is_installed(contents: dict[str, tuple[str, str]]) -> None:
    units = sorted(p.name for p in (REPO / "units").iterdir() if p.is_file())
    assert units
    for name in units:
        assert contents[f"lib/systemd/system/{name}"][0] == "-rw-r--r--", name


def test_docs_examples_completion_tmpfiles_and_man(
        contents: dict[str, tuple[str, str]]) -> None:
    for example in sorted((REPO / "examples").glob("*.toml")):
        assert f"usr/share/doc/pullunit/examples/{example.name}" in contents
    for path in ("usr/share/doc/pullunit/copyright", "usr/share/doc/pullunit/changelog.gz",
                 "usr/share/bash-completion/completions/pullunit",
                 "usr/lib/tmpfiles.d/pullunit.conf", *MAN_PAGES.values()):
        assert path in contents, path


def test_tmpfiles_make_state_and_runtime_dirs(unpacked: Path) -> None:
    lines = [line.split() for line in
             (unpacked / "usr/lib/tmpfiles.d/pullunit.conf").read_text().splitlines()
             if line and not line.startswith("#")]
    assert ["d", "/var/lib/pullunit", "0700", "root", "root", "-"] in lines
    assert ["d", "/run/pullunit", "0755", "root", "root", "-"] in lines
    # node_exporter's textfile directory, as prometheus-node-exporter makes it
    assert ["d", "/var/lib/prometheus/node-exporter", "0755", "root", "root", "-"] in lines


def test_shipped_completion_is_the_trees(unpacked: Path) -> None:
    shipped = unpacked / "usr/share/bash-completion/completions/pullunit"
    assert shipped.read_text() == (REPO / "completion" / "pullunit.bash").read_text()


def test_maintainer_scripts(built: Built, tmp_path: Path) -> None:
    out = _run("dpkg-deb", "-e", built.deb, tmp_path / "DEBIAN")
    assert out.returncode == 0, out.stderr
    control = tmp_path / "DEBIAN"
    postrm = (control / "postrm").read_text()
    assert f'MARKER="{MARKER_PREFIX}"' in postrm
    assert "daemon-reload" in postrm
    postinst = (control / "postinst").read_text()
    assert "systemd-tmpfiles" in postinst and "pullunit.conf" in postinst
    # The timer is enabled and started; the service it runs is never started by dpkg
    # (that would pull images in the middle of apt-get install).
    assert "deb-systemd-helper enable 'pullunit-prefetch.timer'" in postinst
    assert "pullunit-prefetch.service" not in postinst
    assert "deb-systemd-helper enable 'pullunit-update.timer'" in postinst
    assert "pullunit-update.service" not in postinst
    for script in sorted(p.name for p in control.iterdir() if p.name.endswith(("inst", "rm"))):
        assert _run("sh", "-n", control / script).returncode == 0, script


# ------------------------------------------------------------------------- man pages


@pytest.mark.parametrize("page", sorted(MAN_PAGES))
def test_man_page_renders_without_warnings(page: str, unpacked: Path, built: Built) -> None:
    _require("man")
    env = {"PATH": os.environ["PATH"], "LC_ALL": "C.UTF-8", "MANWIDTH": "80"}
    out = _run("man", "--warnings", "-E", "UTF-8", "-l", unpacked / MAN_PAGES[page], env=env)
    assert out.returncode == 0, out.stderr
    assert out.stderr == "", out.stderr
    text = out.stdout
    assert "NAME" in text and "SEE ALSO" in text
    # The footer carries the version from pullunit/__init__.py.
    assert f"pullunit {built.version}" in text.splitlines()[-1]


def test_man_page_and_help_agree(unpacked: Path) -> None:
    _require("man")
    env = {"PATH": os.environ["PATH"], "LC_ALL": "C.UTF-8", "MANWIDTH": "200"}
    man = _run("man", "-E", "UTF-8", "-l", unpacked / MAN_PAGES["pullunit.1"], env=env).stdout
    commands = man.split("\nCOMMANDS\n", 1)[1].split("\nEXIT STATUS\n", 1)
    documented = set(re.findall(r"^ {7}([a-z]+)(?: |$)", commands[0], re.M))
    codes = {int(c) for c in re.findall(r"^ {7}(\d+)$",
                                        commands[1].split("\nENVIRONMENT\n")[0], re.M)}
    help_out = _run(sys.executable, "-m", "pullunit", "--help", cwd=REPO,
                    env={**os.environ, "COLUMNS": "200"}).stdout
    listed = set(re.findall(r"^ {4}(\w+) {2,}", help_out.split("options:", 1)[0], re.M))
    assert documented == listed == set(_subparsers())
    help_codes = {int(n) for n in re.findall(r"(?<![\w(-])(\d{1,3})\s{2,}(?=[A-Za-z])",
                                             help_out.split("exit status:", 1)[1])}
    assert codes == help_codes == {int(c) for c in ExitCode}


# ----------------------------------------------------------- generator, package layout


def test_packaged_generator_renders_from_usr_share_templates(unpacked: Path,
                                                             tmp_path: Path) -> None:
    """The generator as shipped (its own script, modules and template links) turns a
    config into both units. Uses the host's Debian python3 and python3-jinja2."""
    if not Path("/usr/bin/python3").exists():
        pytest.fail("/usr/bin/python3 is missing", pytrace=False)
    cfg = tmp_path / "etc-pullunit"
    cfg.mkdir()
    (cfg / "demo.toml").write_text('[image]\nref = "127.0.0.1:5000/team/app:1.2.3"\n')
    out_dir = tmp_path / "generator"
    out_dir.mkdir()
    env = {"PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "LC_ALL": "C.UTF-8",
           "PYTHONPATH": str(unpacked / DIST), "PULLUNIT_CONFIG_DIR": str(cfg),
           "PYTHONDONTWRITEBYTECODE": "1"}
    proc = _run("/usr/bin/python3", unpacked / GENERATOR, out_dir, out_dir, out_dir, env=env)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    pull = (out_dir / "demo-pull.service").read_text()
    run = (out_dir / "demo.service").read_text()
    assert pull.startswith(f"{MARKER_PREFIX}{cfg}/demo.toml")
    exec_start = f"ExecStart=/usr/bin/pullunit pull --config-dir {cfg} demo"
    assert exec_start in pull.splitlines(), pull
    assert "${PULLUNIT_IMAGE}" in run
    assert (out_dir / "multi-user.target.wants" / "demo.service").is_symlink()
