"""Where a registry's redirect leads, and what goes with it (regclient.Session._redirect).
Pure: the URL join and the rule that credentials stay with the host that asked."""

from __future__ import annotations

import socket

from pullunit.boundedhttp import Endpoint
from pullunit.regclient import Session

EP = Endpoint("https", "registry.test", 5000, ("127.0.0.1", 5000), socket.AF_INET)
HEADERS = {"Authorization": "Bearer secret-token", "Accept": "application/json"}


def test_a_relative_redirect_stays_on_the_registry_with_its_credentials() -> None:
    url, headers = Session._redirect(EP, "/v2/a/blobs/sha256:1", "/blobs/x?sig=1", HEADERS)
    assert url == "https://registry.test:5000/blobs/x?sig=1"
    assert headers == HEADERS


def test_another_host_or_port_gets_no_authorization() -> None:
    for location in ("https://cdn.test/blob", "https://registry.test:5001/blob",
                     "https://registry.test/blob"):  # 443, not the registry's 5000
        url, headers = Session._redirect(EP, "/v2/a/blobs/sha256:1", location, HEADERS)
        assert url == location
        assert headers == {"Accept": "application/json"}, location


def test_the_headers_given_are_not_changed() -> None:
    given = dict(HEADERS)
    Session._redirect(EP, "/p", "https://cdn.test/blob", given)
    assert given == HEADERS
