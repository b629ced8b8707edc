"""Drop-ins (APP.toml.d/*.toml): the merge rule, attribution of errors to the file that set
the value, every command seeing the merged config, generate/generator picking them up,
and `pullunit cat`."""

from __future__ import annotations

import json
import tomllib
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pullunit import dropins, tomlwrite
from pullunit.config import app_files, load_app
from pullunit.errors import ConfigError
from pullunit.unitfiles import generate

from .conftest import assert_no_traceback, cli_env, run_cli

EXE = "/usr/bin/true"
MAIN = '[image]\nref = "127.0.0.1:5000/team/web:1"\n[run]\nports = ["8080:80"]\n' \
       'env = { A = "1", B = "2" }\n[pull]\nkeep = 5\n'


def write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


@pytest.fixture
def web(config_dir: Path) -> Path:
    return write(config_dir / "web.toml", MAIN)


def dropin(web: Path, name: str, text: str) -> Path:
    return write(dropins.dropin_dir(web) / name, text)


# ---- the merge rule, pure

_keys = st.sampled_from(["a", "b", "c", "d.e", "x y"])
_scalars = st.one_of(st.integers(), st.text(max_size=5), st.booleans(),
                     st.lists(st.integers(), max_size=3))
_docs = st.recursive(_scalars, lambda inner: st.dictionaries(_keys, inner, max_size=4),
                     max_leaves=12)
_tables = st.dictionaries(_keys, _docs, max_size=4)


def reference_merge(base: Any, over: Any) -> Any:
    """The rule as stated: a table over a table merges key by key, anything else replaces."""
    if isinstance(base, dict) and isinstance(over, dict):
        out = dict(base)
        for k, v in over.items():
            out[k] = reference_merge(base[k], v) if k in base else v
        return out
    return over


def lookup(data: Any, path: tuple[str, ...]) -> Any:
    for p in path:
        data = data[p]
    return data


@settings(max_examples=300, deadline=None)
@given(st.lists(_tables, min_size=1, max_size=4))
def test_merge_is_the_stated_rule_and_attributes_each_value(layers: list[dict[str, Any]]) -> None:
    named = [(f"f{i}", doc) for i, doc in enumerate(layers)]
    snapshot = json.dumps(layers, sort_keys=True)
    data, origins = dropins.merge(named)
    assert json.dumps(layers, sort_keys=True) == snapshot  # inputs untouched
    expected: Any = {}
    for doc in layers:
        expected = reference_merge(expected, doc)
    assert data == expected
    merged = dropins.Merged(data, origins, tuple(Path(f) for f, _ in named))
    for path, value, file in merged.leaves():
        # The file named is the last one that holds this very value at this path, and no
        # later file has the key at all.
        i = int(file[1:])
        assert lookup(layers[i], path) == value
        for later in layers[i + 1:]:
            try:
                lookup(later, path)
            except (KeyError, TypeError):
                continue
            pytest.fail(f"{path} is in a later file than {file}")


@settings(max_examples=200, deadline=None)
@given(_tables)
def test_cat_text_is_toml_of_exactly_the_merged_data(doc: dict[str, Any]) -> None:
    assert tomllib.loads(tomlwrite.dumps(doc, lambda _: "f")) == doc


def test_tomlwrite_escapes_what_toml_does_not_allow_raw() -> None:
    doc = {"t": {"s": "a\x00b\x7f\"\\\n\té", "k y": [1.5, float("inf"), {"in": True}]}}
    assert tomllib.loads(tomlwrite.dumps(doc)) == doc


def test_later_file_wins_and_order_is_lexical(web: Path) -> None:
    dropin(web, "20-b.toml", "[pull]\nkeep = 20\n")
    dropin(web, "10-a.toml", "[pull]\nkeep = 10\n")
    dropin(web, "9-z.toml", "[pull]\nkeep = 9\n")  # "9" sorts after "2": names, not numbers
    app = load_app(web)
    assert app.pull.keep == 9
    assert [p.name for p in app.dropins] == ["10-a.toml", "20-b.toml", "9-z.toml"]


def test_tables_merge_lists_replace_and_held_values_stay(web: Path) -> None:
    dropin(web, "50-host.toml", '[run]\nports = ["127.0.0.1:80:80"]\n[run.env]\nB = "x"\n'
           'C = "3"\n')
    app = load_app(web)
    assert app.run.ports == ("127.0.0.1:80:80",)
    assert dict(app.run.env) == {"A": "1", "B": "x", "C": "3"}
    assert app.pull.keep == 5  # held by the main file: kept
    assert str(app.image.ref) == "127.0.0.1:5000/team/web:1"


def test_hidden_and_non_toml_files_are_ignored(web: Path) -> None:
    dropin(web, ".hidden.toml", "[pull]\nkeep = 1\n")
    dropin(web, "notes.txt", "[pull]\nkeep = 2\n")
    dropin(web, "old.toml.bak", "[pull]\nkeep = 3\n")
    (dropins.dropin_dir(web) / "dir.toml").mkdir()
    assert load_app(web).pull.keep == 5
    assert load_app(web).dropins == ()


def test_drop_in_dir_is_not_an_app(config_dir: Path, web: Path) -> None:
    dropin(web, "10.toml", "[pull]\nkeep = 1\n")
    assert app_files(config_dir) == [web]


def test_drop_in_name_with_a_newline_is_refused(web: Path) -> None:
    dropin(web, "a\nExecStart=x.toml", "")
    with pytest.raises(ConfigError, match="drop-in file name"):
        load_app(web)


# ---- attribution: the file that set the bad value

@pytest.mark.parametrize(("text", "key"), [
    ('[run]\nports = ["nope"]\n', "run.ports[0]"),
    ('[run]\nportz = ["80"]\n', "run.portz"),
    ("[rum]\nx = 1\n", "rum"),
    ('[run.env]\n"1BAD" = "x"\n', "run.env.1BAD"),
    ('[run.secrets]\n"../x" = "/etc/x"\n', "run.secrets.../x"),
    ('[pull]\ninitial_delay = "10min"\n', "pull.max_delay"),  # the check names max_delay...
], ids=["bad-value", "unknown-key", "unknown-table", "bad-env-name", "bad-secret",
        "cross-check"])
def test_error_names_the_drop_in_that_set_the_value(web: Path, text: str, key: str) -> None:
    bad = dropin(web, "50-bad.toml", text)
    dropin(web, "60-fine.toml", "[pull]\nstall_timeout = 5\n")
    with pytest.raises(ConfigError) as e:
        load_app(web)
    if key == "pull.max_delay":  # ...which the main file holds (by default): named there
        assert e.value.message.startswith(f"{web}: {key}: ")
    else:
        assert e.value.message.startswith(f"{bad}: {key}: "), e.value.message


def test_value_in_main_file_is_named_there_even_with_drop_ins(web: Path) -> None:
    web.write_text(MAIN.replace('"8080:80"', '"x"'))
    dropin(web, "10.toml", "[run.env]\nC = \"3\"\n")
    with pytest.raises(ConfigError) as e:
        load_app(web)
    assert e.value.message.startswith(f"{web}: run.ports[0]: ")


def test_a_drop_in_replacing_a_table_owns_its_insides(web: Path) -> None:
    d = dropin(web, "10.toml", '[run]\nenv = "oops"\n')
    with pytest.raises(ConfigError) as e:
        load_app(web)
    assert e.value.message.startswith(f"{d}: run.env: expected a table")


def test_a_broken_drop_in_is_named(web: Path) -> None:
    d = dropin(web, "10.toml", "[run\n")
    with pytest.raises(ConfigError, match=f"Cannot read {d}"):
        load_app(web)


# ---- generate, the generator, the CLI

def test_generate_picks_up_a_drop_in_and_removal_undoes_it(config_dir: Path, web: Path,
                                                         tmp_path: Path) -> None:
    out = tmp_path / "out"
    generate(config_dir, out, executable=EXE)
    before = (out / "web.service").read_text()
    d = dropin(web, "50-port.toml", '[run]\nports = ["9090:80"]\n')
    result = generate(config_dir, out, executable=EXE)
    assert result.errors == [] and out / "web.service" in result.written
    text = (out / "web.service").read_text()
    assert "--publish 9090:80" in text and "8080:80" not in text
    assert text.splitlines()[1] == f"# with drop-in {d}"
    d.unlink()
    generate(config_dir, out, executable=EXE)
    assert (out / "web.service").read_text() == before


def test_generator_picks_up_a_drop_in(config_dir: Path, web: Path, tmp_path: Path) -> None:
    dropin(web, "50-port.toml", '[run]\nports = ["9090:80"]\n')
    out = tmp_path / "gen"
    out.mkdir()
    proc = run_cli(out, out, out, program="pullunit-generator",
                   env=cli_env(PULLUNIT_CONFIG_DIR=str(config_dir), PULLUNIT_EXECUTABLE=EXE))
    assert proc.returncode == 0, proc.stderr
    assert "--publish 9090:80" in (out / "web.service").read_text()


def test_bad_drop_in_costs_only_its_app(config_dir: Path, web: Path, tmp_path: Path) -> None:
    write(config_dir / "other.toml", '[image]\nref = "a:1"\n')
    bad = dropin(web, "50.toml", "[run]\nrestart = \"sometimes\"\n")
    out = tmp_path / "out"
    proc = run_cli("generate", "--config-dir", config_dir, "--output-dir", out,
                   env=cli_env(PULLUNIT_EXECUTABLE=EXE))
    assert proc.returncode == 78
    assert_no_traceback(proc.stderr)
    assert f"{bad}: run.restart: 'sometimes' is not a valid value" in proc.stderr
    assert sorted(p.name for p in out.iterdir()) == ["other-pull.service", "other.service"]


def test_every_command_reading_configs_sees_drop_ins(config_dir: Path, web: Path) -> None:
    """validate and status go through load_app like pull, pin, update, doctor, rollback."""
    dropin(web, "50.toml", "[run]\nportz = 1\n")
    for cmd in (["validate"], ["status", "web"], ["pin", "--check", "web"]):
        proc = run_cli(*cmd, "--config-dir", config_dir)
        assert proc.returncode in (1, 78), (cmd, proc.stderr)  # status: 1, a check failed
        assert "web.toml.d/50.toml: run.portz: unknown key" in proc.stdout + proc.stderr, cmd


def test_orphan_drop_in_dir_is_a_warning(config_dir: Path, web: Path) -> None:
    (config_dir / "gone.toml.d").mkdir()
    write(config_dir / "gone.toml.d" / "10.toml", "[pull]\nkeep = 1\n")
    proc = run_cli("validate", "--config-dir", config_dir)
    assert proc.returncode == 0, proc.stderr
    assert f"{config_dir / 'gone.toml.d'}: there is no gone.toml beside it" in proc.stderr


def test_init_and_pin_lock_keep_working_beside_drop_ins(config_dir: Path) -> None:
    write(config_dir / "new.toml.d" / "10.toml", "[pull]\nkeep = 7\n")
    proc = run_cli("init", "--config-dir", config_dir, "--image", "127.0.0.1:5000/a:1", "new")
    assert proc.returncode == 0, proc.stderr
    app = load_app(config_dir / "new.toml")
    assert app.pull.keep == 7
    write(config_dir / "new.lock.toml", "")  # a lock file is neither an app nor a drop-in
    assert app_files(config_dir) == [config_dir / "new.toml"]


def test_cat_prints_merged_toml_with_sources(config_dir: Path, web: Path) -> None:
    from pullunit.config import load_merged

    d = dropin(web, "50.toml", '[run.env]\nB = "x"\n[pull]\nkeep = 9\n')
    proc = run_cli("cat", "--config-dir", config_dir, "web")
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.startswith(f"# {web}\n# {d}\n\n")
    assert tomllib.loads(proc.stdout) == load_merged(web).data
    env = proc.stdout.split("[run.env]\n", 1)[1]
    assert env.startswith(f'# {web}\nA = "1"\n# {d}\nB = "x"\n')
    as_json = json.loads(run_cli("cat", "--json", "--config-dir", config_dir, "web").stdout)
    assert as_json["files"] == [str(web), str(d)]
    sources = {tuple(s["key"]): s["file"] for s in as_json["sources"]}
    assert sources[("run", "env", "B")] == str(d)
    assert sources[("run", "env", "A")] == str(web)
    assert sources[("pull", "keep")] == str(d)
    assert as_json["config"]["run"]["env"] == {"A": "1", "B": "x"}


def test_cat_of_an_invalid_config_prints_it_then_exits_78(config_dir: Path, web: Path) -> None:
    d = dropin(web, "50.toml", "[pull]\nkeep = 0\n")
    proc = run_cli("cat", "--config-dir", config_dir, "web")
    assert proc.returncode == 78
    assert "keep = 0" in proc.stdout
    assert f"{d}: pull.keep: must be between 1 and 100" in proc.stderr
    assert_no_traceback(proc.stderr)


def test_checks_after_validation_name_the_drop_in_too(config_dir: Path, web: Path,
                                                      tmp_path: Path) -> None:
    """A run.name another app holds, and validate's word on a secret file, name the
    drop-in that set them."""
    write(config_dir / "a.toml", '[image]\nref = "a:1"\n[run]\nname = "taken"\n')
    name = dropin(web, "10-name.toml", '[run]\nname = "taken"\n')
    secret = dropin(web, "20-secret.toml", f'[run.secrets]\ndb = "{tmp_path}/missing"\n')
    proc = run_cli("generate", "--config-dir", config_dir, "--output-dir", tmp_path / "out",
                   env=cli_env(PULLUNIT_EXECUTABLE=EXE))
    assert f"{name}: run.name: container name 'taken' is already used by" in proc.stderr
    proc = run_cli("validate", "--config-dir", config_dir, "web")
    assert f"{secret}: run.secrets.db: {tmp_path}/missing does not exist" in proc.stderr
