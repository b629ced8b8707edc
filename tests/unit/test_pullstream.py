"""The pull progress stream as the socket delivers it: split anywhere, several messages
per read, errors inside the stream."""

from __future__ import annotations

import json

import pytest

from pullunit.classify import FailureClass
from pullunit.pullstream import MessageSplitter, Progress, StreamError, failure_of

# What dockerd 20.10 sent for a one-layer pull (tests/testbed, HTTP/1.0), verbatim.
STREAM = (
    b'{"status":"Pulling from team/exp","id":"1"}\r\n'
    b'{"status":"Pulling fs layer","progressDetail":{},"id":"1f4a67cfd71c"}\r\n'
    b'{"status":"Downloading","progressDetail":{"current":32768,"total":1064822},'
    b'"progress":"[=\\u003e    ]  32.77kB/1.065MB","id":"1f4a67cfd71c"}\r\n'
    b'{"status":"Download complete","progressDetail":{},"id":"1f4a67cfd71c"}\r\n'
    b'{"status":"Extracting","progressDetail":{"current":1064822,"total":1064822},'
    b'"id":"1f4a67cfd71c"}\r\n'
    b'{"status":"Pull complete","progressDetail":{},"id":"1f4a67cfd71c"}\r\n'
    b'{"status":"Digest: sha256:bbe1e8e7e577cc98cd6d1f8db6a6cb9db913ecc3e4a9f67060fede9c54b305a7"}'
    b'\r\n{"status":"Status: Downloaded newer image for 127.0.0.1:36927/team/exp:1"}\r\n'
)
EXPECTED = [json.loads(line) for line in STREAM.decode().split("\r\n") if line]


def _feed(pieces: list[bytes]) -> list[dict[str, object]]:
    s = MessageSplitter()
    out = []
    for p in pieces:
        out += s.feed(p)
    return out + s.finish()


def test_one_read() -> None:
    assert _feed([STREAM]) == EXPECTED


@pytest.mark.parametrize("size", [1, 2, 3, 7, 64, 100, 1000])
def test_split_anywhere(size: int) -> None:
    pieces = [STREAM[i:i + size] for i in range(0, len(STREAM), size)]
    assert _feed(pieces) == EXPECTED


def test_split_inside_a_utf8_sequence() -> None:
    data = '{"status":"Pulling from tëam/ëxp"}\r\n'.encode()
    cut = data.index("ë".encode()) + 1
    assert _feed([data[:cut], data[cut:]]) == [{"status": "Pulling from tëam/ëxp"}]


def test_objects_back_to_back_and_blank_lines() -> None:
    assert _feed([b'{"a":1}{"b":2}\n\r\n  \n{"c":3}']) == [{"a": 1}, {"b": 2}, {"c": 3}]


def test_nothing_until_a_line_ends() -> None:
    s = MessageSplitter()
    assert s.feed(b'{"status":"Pull') == []
    assert s.feed(b'ing"}') == []
    assert s.feed(b"\r\n") == [{"status": "Pulling"}]


@pytest.mark.parametrize("data", [b"<html>oops</html>\n", b"[1, 2]\n", b'{"a": \n'])
def test_not_a_stream_of_objects(data: bytes) -> None:
    with pytest.raises(StreamError):
        _feed([data])


def test_endless_line() -> None:
    s = MessageSplitter()
    with pytest.raises(StreamError):
        for _ in range(20):
            s.feed(b"x" * 65536)


def test_error_in_the_stream() -> None:
    msg = {"errorDetail": {"message": "write /var/lib/docker/tmp/x: no space left on device"},
           "error": "write /var/lib/docker/tmp/x: no space left on device"}
    failed = failure_of(msg)
    assert failed is not None and failed.failure.cls is FailureClass.DISK_FULL
    assert failure_of({"error": "unknown blob"}).failure.cls is FailureClass.NOT_FOUND  # type: ignore[union-attr]
    assert failure_of({"status": "Downloading"}) is None


def test_progress_sums_layers_and_notes_retries() -> None:
    p = Progress.empty()
    moved = [p.update(m) for m in EXPECTED]
    assert moved == [False, True, True, True, True, False, False, False]
    assert p.done == p.total == 1064822
    assert not p.retrying
    assert p.update({"status": "Retrying in 5 seconds", "progressDetail": {}, "id": "x"}) is False
    assert p.retrying
    # odd values do not crash it
    assert p.update({"status": "Downloading", "progressDetail": {"total": "x"}, "id": "y"}) \
        is False
    assert p.update({"status": "Downloading", "progressDetail": [], "id": 3}) is False
