"""Fast checks of what the Debian package ships, on the sources in the tree: the man pages
agree with the CLI (commands, options, exit codes, environment) and with the config
schema, the bash completion is valid and completes what the parser accepts, and the
packaging files are consistent. The slow checks of the built .deb are in tests/deb."""

from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from pullunit import __version__, cli, config, sdgenerator
from pullunit.errors import ExitCode
from pullunit.paths import MARKER_PREFIX

from .conftest import REPO

MAN = REPO / "docs" / "man"
DEBIAN = REPO / "packaging" / "debian"
COMPLETION = REPO / "completion" / "pullunit.bash"
PAGES = ("pullunit.1", "pullunit.toml.5", "pullunit-generator.8")


# ------------------------------------------------------------------------------- helpers


def scd(page: str) -> str:
    return (MAN / f"{page}.scd").read_text(encoding="utf-8")


def sections(text: str) -> dict[str, str]:
    """Top-level '# NAME' sections of an scdoc source (outside ``` blocks)."""
    out: dict[str, list[str]] = {}
    current = ""
    literal = False
    for line in text.splitlines():
        if line.strip().startswith("```"):
            literal = not literal
        if not literal and line.startswith("# "):
            current = line[2:].strip()
            out[current] = []
        elif current:
            out[current].append(line)
    return {name: "\n".join(lines) for name, lines in out.items()}


def entries(section: str) -> dict[str, str]:
    """Definition entries of a section: a line starting at column 0 with *TERM* (the
    first bold word), up to the next such line."""
    out: dict[str, str] = {}
    term = None
    for line in section.splitlines():
        m = re.match(r"^\*([^*\s]+)\*", line)
        if m:
            term = m.group(1)
            out[term] = line
        elif term is not None:
            out[term] += "\n" + line
    return out


def subparsers() -> dict[str, argparse.ArgumentParser]:
    parser = cli.build_parser()
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            return dict(action.choices)
    raise AssertionError("pullunit has no subcommands")


def options(parser: argparse.ArgumentParser) -> set[str]:
    return {s for a in parser._actions for s in a.option_strings}


def help_text() -> str:
    env = {**os.environ, "COLUMNS": "200", "NO_COLOR": "1"}
    proc = subprocess.run([sys.executable, "-m", "pullunit", "--help"], cwd=REPO, env=env,
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    return proc.stdout


def help_exit_codes(text: str) -> set[int]:
    """The codes in the 'exit status:' table of `pullunit --help`."""
    table = text.split("exit status:", 1)[1]
    return {int(n) for n in re.findall(r"(?<![\w(-])(\d{1,3})\s{2,}(?=[A-Za-z])", table)}


def require(tool: str) -> str:
    path = shutil.which(tool)
    if path is None:
        pytest.fail(f"{tool} is not installed (scripts/setup installs it)", pytrace=False)
    return path


# ------------------------------------------------------------------------ pullunit(1)


def test_man_documents_every_command_and_no_other() -> None:
    documented = entries(sections(scd("pullunit.1"))["COMMANDS"])
    assert set(documented) == set(subparsers())


@pytest.mark.parametrize("command", sorted(subparsers()))
def test_man_documents_every_option_of_each_command(command: str) -> None:
    block = entries(sections(scd("pullunit.1"))["COMMANDS"])[command]
    # --config-dir and -h/--help are common to all commands: GLOBAL OPTIONS has them.
    common = {"-h", "--help", "--config-dir"}
    for opt in sorted(options(subparsers()[command]) - common):
        assert f"*{opt}*" in block, f"pullunit.1: {command} does not document {opt}"
    glob = sections(scd("pullunit.1"))["GLOBAL OPTIONS"]
    for opt in sorted(common | options(cli.build_parser()) - {"-h"}):
        assert f"*{opt}*" in glob, f"pullunit.1: GLOBAL OPTIONS lacks {opt}"


def test_man_exit_status_is_the_exit_code_table() -> None:
    documented = {int(c) for c in entries(sections(scd("pullunit.1"))["EXIT STATUS"])}
    assert documented == {int(c) for c in ExitCode}


def test_help_and_man_agree_on_commands_and_exit_codes() -> None:
    text = help_text()
    listed = set(re.findall(r"^ {4}(\w+) {2,}", text.split("options:", 1)[0], re.M))
    man = scd("pullunit.1")
    assert listed == set(entries(sections(man)["COMMANDS"]))
    assert help_exit_codes(text) == {int(c) for c in entries(sections(man)["EXIT STATUS"])}


def test_help_exit_table_parses() -> None:
    # Guards the parser above: the table in cli.py is the one --help prints.
    assert help_exit_codes(cli.EXIT_CODES_HELP) == {int(c) for c in ExitCode}


def test_man_documents_every_environment_variable_read() -> None:
    read: set[str] = set()
    for path in (REPO / "pullunit").rglob("*.py"):
        text = path.read_text(encoding="utf-8")
        read |= set(re.findall(r"os\.environ(?:\.get)?[(\[]\"([A-Z][A-Z0-9_]+)\"", text))
        read |= set(re.findall(r"\"([A-Z][A-Z0-9_]+)\" in os\.environ", text))
        read |= set(re.findall(r"os\.getenv\(\"([A-Z][A-Z0-9_]+)\"", text))
    read -= {"TERM"}  # only TERM=dumb, next to NO_COLOR; not pullunit's own setting
    env_section = sections(scd("pullunit.1"))["ENVIRONMENT"]
    documented = set(re.findall(r"^\*([A-Z][A-Z0-9_]+)\*|, \*([A-Z][A-Z0-9_]+)\*",
                                env_section, re.M))
    names = {n for pair in documented for n in pair if n}
    required = {"PULLUNIT_CONFIG_DIR", "PULLUNIT_RUNTIME_DIR", "PULLUNIT_STATE_DIR",
                "SYSTEMD_LOG_LEVEL", "NO_COLOR", "DOCKER_HOST"}
    missing = sorted((read | required) - names)
    assert not missing, f"pullunit.1 ENVIRONMENT does not document {missing}"


def test_man_names_the_version_nowhere() -> None:
    # The version comes from pullunit/__init__.py alone; debian/rules puts it in the footer.
    for page in PAGES:
        assert __version__ not in scd(page)


# ------------------------------------------------------------------- pullunit.toml(5)


def test_toml_man_documents_every_table_and_key() -> None:
    secs = sections(scd("pullunit.toml.5"))
    for table, keys in config._SCHEMA.items():
        assert f"[{table}]" in secs, f"pullunit.toml.5 has no section [{table}]"
        documented = entries(secs[f"[{table}]"])
        assert set(documented) == set(keys), f"[{table}]"


@pytest.mark.parametrize(("table", "key", "enum"), [
    ("image", "policy", config.Policy), ("pull", "jitter", config.Jitter),
    ("run", "restart", config.Restart)])
def test_toml_man_lists_every_enum_value(table: str, key: str, enum: type) -> None:
    block = entries(sections(scd("pullunit.toml.5"))[f"[{table}]"])[key]
    for member in enum:
        assert f'"{member.value}"' in block, f"{table}.{key}: {member.value}"


@pytest.mark.parametrize(("table", "cls"), [
    ("pull", config.PullConfig), ("run", config.RunConfig), ("unit", config.UnitConfig),
    ("health", config.HealthConfig), ("update", config.UpdateConfig)])
def test_toml_man_states_simple_defaults(table: str, cls: type) -> None:
    """Booleans, integers and enums have one spelling; check those defaults literally."""
    block = entries(sections(scd("pullunit.toml.5"))[f"[{table}]"])
    defaults = cls(name="x") if cls is config.RunConfig else cls()
    for key in config._SCHEMA[table]:
        value = getattr(defaults, key)
        if isinstance(value, bool):
            assert f"Default: {str(value).lower()}" in " ".join(block[key].split()), key
        elif isinstance(value, int) and not isinstance(value, float):
            assert f"Default: {value}." in " ".join(block[key].split()), key
        elif hasattr(value, "value") and isinstance(value.value, str):
            assert f'"{value.value}" (default' in " ".join(block[key].split()), key


def test_app_name_limit_in_man_matches_code() -> None:
    assert f"at most {config.APP_NAME_MAX} characters" in " ".join(scd("pullunit.toml.5").split())


# --------------------------------------------------------------- pullunit-generator(8)


def test_generator_man_exit_codes_match() -> None:
    documented = {int(c) for c in entries(sections(scd("pullunit-generator.8"))["EXIT STATUS"])}
    assert documented == {0, 1, 64}
    assert sdgenerator.main([]) == 64


# ----------------------------------------------------------------- rendering (scdoc)


@pytest.mark.parametrize("page", PAGES)
def test_man_page_builds_and_renders_without_warnings(page: str, tmp_path: Path) -> None:
    scdoc, man = require("scdoc"), require("man")
    src = scd(page)
    built = subprocess.run([scdoc], input=src, capture_output=True, text=True, timeout=30)
    assert built.returncode == 0, built.stderr
    out = tmp_path / page
    out.write_text(built.stdout, encoding="utf-8")
    # Not a terminal: man-db strips the overstrike formatting (col -b).
    env = {"PATH": os.environ["PATH"], "LC_ALL": "C.UTF-8", "MANWIDTH": "80"}
    shown = subprocess.run([man, "--warnings", "-E", "UTF-8", "-l", str(out)], env=env,
                           capture_output=True, text=True, timeout=30)
    assert shown.returncode == 0, shown.stderr
    assert shown.stderr == "", shown.stderr
    assert "NAME" in shown.stdout


def test_scd_sources_have_no_trailing_white_space() -> None:
    # scdoc turns a trailing space into output; a trailing "++" is its line break.
    for page in PAGES:
        for n, line in enumerate(scd(page).splitlines(), 1):
            assert not line.endswith((" ", "\t")), f"{page}.scd:{n}: trailing white space"


# ------------------------------------------------------------------- bash completion


def comp_words(line: str) -> list[str]:
    """Split a command line the way bash does for completion: at white space, and with
    '=' and ':' (in COMP_WORDBREAKS) as words of their own."""
    words = re.findall(r"[^\s=:]+|[=:]", line)
    if not line or line[-1] in " =:":
        words.append("")
    return words


def complete(line: str, env: dict[str, str] | None = None, bash_completion: bool = False,
             ) -> set[str]:
    """Run the completion function for `line` (completing its last word) in bash."""
    script = ""
    if bash_completion:
        script += "source /usr/share/bash-completion/bash_completion\n"
    script += f"""source {COMPLETION}
COMP_LINE=$1
shift
COMP_WORDS=("$@")
COMP_POINT=${{#COMP_LINE}} COMP_CWORD=$((${{#COMP_WORDS[@]}} - 1))
_pullunit
printf '%s\\n' "${{COMPREPLY[@]}}"
"""
    run_env = {"PATH": os.environ["PATH"], "HOME": os.environ.get("HOME", "/root"),
               **(env or {})}
    proc = subprocess.run(["bash", "-c", script, "bash", line, *comp_words(line)],
                          env=run_env, capture_output=True, text=True, timeout=30)
    assert proc.returncode == 0, proc.stderr
    return {w for w in proc.stdout.splitlines() if w}


def test_completion_is_valid_bash() -> None:
    proc = subprocess.run(["bash", "-n", str(COMPLETION)], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr


def test_completion_offers_exactly_the_commands() -> None:
    assert complete("pullunit ") == set(subparsers())
    assert complete("pullunit --debug p") == {c for c in subparsers() if c.startswith("p")}


def test_completion_offers_the_global_options() -> None:
    assert complete("pullunit -") == options(cli.build_parser())


@pytest.mark.parametrize("command", sorted(subparsers()))
def test_completion_offers_each_commands_options(command: str) -> None:
    assert complete(f"pullunit {command} -") == options(subparsers()[command])


@pytest.mark.parametrize("bash_completion", [False, True], ids=["plain", "bash-completion"])
def test_completion_offers_app_names_from_the_config_dir(tmp_path: Path,
                                                        bash_completion: bool) -> None:
    if bash_completion and not Path("/usr/share/bash-completion/bash_completion").exists():
        pytest.fail("bash-completion is not installed (scripts/setup installs it)")
    cfg = tmp_path / "cfg"
    cfg.mkdir()
    for name in ("web.toml", "db.toml", "web.lock.toml", ".hidden.toml", "notes.txt",
                 "pullunit.toml"):  # the host-wide settings are not an app
        (cfg / name).write_text("")
    (cfg / "dir.toml").mkdir()
    env = {"PULLUNIT_CONFIG_DIR": str(cfg)}
    assert complete("pullunit status ", env, bash_completion) == {"web", "db"}
    assert complete("pullunit pull w", env, bash_completion) == {"web"}
    # --config-dir on the line wins over the environment
    other = tmp_path / "other"
    other.mkdir()
    (other / "api.toml").write_text("")
    assert complete(f"pullunit rollback --config-dir {other} ", env,
                    bash_completion) == {"api"}
    assert complete(f"pullunit --debug generate --config-dir={other} ", env,
                    bash_completion) == {"api"}
    # nothing to complete for a new app's name or an image reference
    assert complete("pullunit init ", env, bash_completion) == set()
    assert complete("pullunit init --image ", env, bash_completion) == set()


def test_completion_completes_directories_for_dir_options(tmp_path: Path) -> None:
    (tmp_path / "units").mkdir()
    (tmp_path / "file").write_text("")
    assert complete(f"pullunit generate --output-dir {tmp_path}/") == {f"{tmp_path}/units"}


# ---------------------------------------------------------------- packaging files


def test_control_depends_only_on_debian_12_packages() -> None:
    control = (DEBIAN / "control").read_text()
    binary = control.split("\nPackage: pullunit\n", 1)[1]
    depends = re.search(r"^Depends:(.*?)(?=^\S)", binary, re.M | re.S)
    assert depends is not None
    items = [d.strip() for d in depends.group(1).split(",") if d.strip()]
    assert "docker.io | docker-ce" in items
    names = {i for i in items if not i.startswith("${")} - {"docker.io | docker-ce"}
    assert names == {"python3-pystemd", "python3-docker", "python3-jinja2",
                     "python3-tomli-w", "python3-sdnotify", "python3-prometheus-client"}
    recommends = re.search(r"^Recommends:(.*?)(?=^\S)", binary, re.M | re.S)
    assert recommends is not None
    assert [r.strip() for r in recommends.group(1).split(",") if r.strip()] == [
        "prometheus-node-exporter"]
    assert "python3-pip" not in control


def test_links_cover_every_template() -> None:
    links = (DEBIAN / "pullunit.links").read_text().splitlines()
    for template in sorted((REPO / "templates").glob("*.j2")):
        name = f"templates/{template.name}"
        assert (f"usr/share/pullunit/{name} usr/lib/python3/dist-packages/pullunit/{name}"
                in links), f"{name} missing from packaging/debian/pullunit.links"


def test_install_ships_every_static_unit() -> None:
    install = (DEBIAN / "pullunit.install").read_text().splitlines()
    assert "units/* lib/systemd/system/" in install
    assert list((REPO / "units").iterdir()), "units/ is empty"


def test_prefetch_timer_runs_daily_with_randomized_delay() -> None:
    timer = (REPO / "units" / "pullunit-prefetch.timer").read_text()
    service = (REPO / "units" / "pullunit-prefetch.service").read_text()
    assert re.search(r"^OnCalendar=daily$", timer, re.M)
    assert re.search(r"^RandomizedDelaySec=\S+", timer, re.M)
    assert re.search(r"^ExecStart=/usr/bin/pullunit prefetch$", service, re.M)


def test_update_timer_runs_daily_with_randomized_delay_and_only_auto_apps() -> None:
    timer = (REPO / "units" / "pullunit-update.timer").read_text()
    service = (REPO / "units" / "pullunit-update.service").read_text()
    assert re.search(r"^OnCalendar=daily$", timer, re.M)
    assert re.search(r"^RandomizedDelaySec=\S+", timer, re.M)
    assert re.search(r"^WantedBy=timers.target$", timer, re.M)
    assert re.search(r"^ExecStart=/usr/bin/pullunit update --auto$", service, re.M)
    assert re.search(r"^Type=oneshot$", service, re.M)


def test_lintian_overrides_carry_a_reason() -> None:
    for path in DEBIAN.glob("*lintian-overrides"):
        lines = path.read_text().splitlines()
        for n, line in enumerate(lines):
            if line.strip() and not line.startswith("#"):
                assert n > 0 and lines[n - 1].startswith("#") and lines[n - 1][1:].strip(), (
                    f"{path.name}: override {line!r} has no reason comment above it")


def test_postrm_is_valid_sh_and_only_purges() -> None:
    postrm = DEBIAN / "postrm"
    proc = subprocess.run(["sh", "-n", str(postrm)], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    text = postrm.read_text()
    assert "#DEBHELPER#" in text
    assert f'MARKER="{MARKER_PREFIX}"' in text
    assert "docker" not in text.replace("Docker images", ""), "postrm must not touch images"
    assert "/etc/pullunit" not in text.replace("configs in /etc/pullunit", "")


def test_make_version_is_pullunit_version() -> None:
    require("make")
    proc = subprocess.run(["make", "-s", "--no-print-directory", "version"], cwd=REPO,
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    expected = re.sub(r"\.?(a|b|rc|dev)(\d*)", r"~\1\2", __version__).replace(".post", "+post")
    assert proc.stdout.strip() == expected


def test_changelog_parses() -> None:
    tool = require("dpkg-parsechangelog")
    proc = subprocess.run([tool, "-l", str(DEBIAN / "changelog"), "-S", "Source"],
                          capture_output=True, text=True, timeout=30)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "pullunit"
