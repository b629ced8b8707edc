"""pullunit.escape: quoting config values for unit files, checked against systemd itself."""

from __future__ import annotations

from pathlib import Path

import pytest

from pullunit.escape import (
    UnsafeValueError,
    check_text,
    escape_specifiers,
    exec_line,
    exec_word,
    unit_value,
)

from . import sdtools

CONTROL = ["\x00", "\x01", "\t", "\n", "\r", "\x1b", "\x1f", "\x7f", "\x80", "\x85", "\x9f"]


@pytest.mark.parametrize("ch", CONTROL, ids=[f"U+{ord(c):04X}" for c in CONTROL])
def test_check_text_rejects_control_characters(ch: str) -> None:
    with pytest.raises(UnsafeValueError, match="control character"):
        check_text(f"a{ch}b")


@pytest.mark.parametrize("ch", ["\u2028", "\u2029"])
def test_check_text_rejects_line_separators(ch: str) -> None:
    with pytest.raises(UnsafeValueError, match=f"U\\+{ord(ch):04X}"):
        check_text(f"a{ch}b")


# systemd's utf8_is_valid() refuses Unicode noncharacters: a unit line holding one is
# logged as "String is not UTF-8 clean, ignoring assignment" and the unit fails to load.
NONCHARACTERS = ["\ufdd0", "\ufdef", "\ufffe", "\uffff", "\U0001fffe", "\U000effff",
                 "\U0010ffff"]


@pytest.mark.parametrize("ch", NONCHARACTERS, ids=[f"U+{ord(c):04X}" for c in NONCHARACTERS])
def test_check_text_rejects_noncharacters(ch: str) -> None:
    with pytest.raises(UnsafeValueError):
        check_text(f"a{ch}b")


@pytest.mark.parametrize("text", ["", "plain", "é ☃ 😀", "\u00a0", "\u200b", "\ufeff",
                                  "%$\"'\\;`*", "\ufffd", "\ufdcf", "\ufdf0", "\U0010fffd"])
def test_check_text_accepts_printable_text(text: str) -> None:
    check_text(text)


def test_escape_specifiers() -> None:
    assert escape_specifiers("100% %n %%") == "100%% %%n %%%%"


@pytest.mark.parametrize(("value", "expected"), [
    ("My app", "My app"),
    ("100% done", "100%% done"),
    ('quotes " and \' and $HOME ${X} stay', 'quotes " and \' and $HOME ${X} stay'),
    ("back\\slash inside", "back\\slash inside"),
])
def test_unit_value(value: str, expected: str) -> None:
    assert unit_value(value) == expected


@pytest.mark.parametrize(("value", "message"), [
    (" leading", "leading or trailing white space"),
    ("trailing ", "leading or trailing white space"),
    ("trailing\\", "ends with a backslash"),
    ("new\nline", "control character"),
])
def test_unit_value_rejects(value: str, message: str) -> None:
    with pytest.raises(UnsafeValueError, match=message):
        unit_value(value)


@pytest.mark.parametrize(("word", "expected"), [
    ("plain", "plain"),
    ("/usr/bin/docker", "/usr/bin/docker"),
    ("--publish=8080:80", "--publish=8080:80"),
    ("100%", "100%%"),
    ("%n", "%%n"),
    ("a b", '"a b"'),
    ("", '""'),
    (";", "\\;"),
    ("a;", '"a;"'),
    ("$HOME", '"$$HOME"'),
    ("${X}", '"$${X}"'),
    ('say "hi"', '"say \\"hi\\""'),
    ("back\\slash", '"back\\\\slash"'),
    ("\\", '"\\\\"'),
    ("it's", "\"it's\""),
    ("é", '"é"'),
])
def test_exec_word(word: str, expected: str) -> None:
    assert exec_word(word) == expected


def test_exec_word_rejects_control_characters() -> None:
    with pytest.raises(UnsafeValueError):
        exec_word("a\nExecStartPre=/bin/evil")


def test_exec_line_quotes_word_by_word() -> None:
    line = exec_line(["/usr/bin/docker", "run", "a b", "${PULLUNIT_IMAGE}", "$x", ";"])
    assert line == '/usr/bin/docker run "a b" "$${PULLUNIT_IMAGE}" "$$x" \\;'


def test_exec_line_rejects_empty_argv() -> None:
    with pytest.raises(UnsafeValueError):
        exec_line([])


# --- through systemd's parser --------------------------------------------------------------

TRICKY_WORDS = [
    "plain", "", " ", "a b", "  two  spaces  ", ";", "\\;", "a;", ";b", "%", "%%", "%n", "%i",
    "100%", "$", "$$", "$HOME", "${HOME}", "${PULLUNIT_IMAGE}", "$$x", '"', '""', "'", "''",
    "\\", "\\\\", "\\n", "\\x41", "\\101", "\\u00e9", "back\\", "`id`", "*?[a]", "#c", "~",
    "-", "--", "@x", "+x", "!x", ":x", "é", "😀", "e\u0301", "\u00a0", "\u200b", "\ufeff",
    "\u3000", "=", "a=b c", "{}", "()", "<>", "|&",
]


@pytest.mark.skipif(not sdtools.HAVE_SYSTEMD_TEST, reason="needs /lib/systemd/systemd --test")
def test_exec_words_reach_the_process_intact(tmp_path: Path) -> None:
    """Every word exec_word() quotes comes out of systemd's parser and exec-time
    $-expansion as exactly that word, in its own argv slot."""
    unit = tmp_path / "escape-check.service"
    unit.write_text("[Unit]\nDescription=escape check\n[Service]\n"
                    f"ExecStart={exec_line(['/usr/bin/true', *TRICKY_WORDS])}\n")
    result = sdtools.load_units([unit])
    dump = result.units["escape-check.service"]
    assert dump.load_state == "loaded", result.stderr
    assert result.complaints() == []
    [line] = dump.exec_lines["ExecStart"]
    assert sdtools.exec_argv(line) == ["/usr/bin/true", *TRICKY_WORDS]


@pytest.mark.skipif(not sdtools.HAVE_SYSTEMD_TEST, reason="needs /lib/systemd/systemd --test")
def test_unit_values_reach_systemd_intact(tmp_path: Path) -> None:
    values = ["100% done", "%n %i %%", "$HOME ${X} $$", "quote \" ' `", "back\\slash x",
              "é ☃ 😀 \u200b", "a;b # not a comment", "x\u00a0y"]
    units = []
    for i, v in enumerate(values):
        unit = tmp_path / f"desc{i}.service"
        unit.write_text(f"[Unit]\nDescription={unit_value(v)}\n[Service]\n"
                        "ExecStart=/usr/bin/true\n")
        units.append(unit)
    result = sdtools.load_units(units)
    assert result.complaints() == []
    for i, v in enumerate(values):
        assert result.units[f"desc{i}.service"].description == v
