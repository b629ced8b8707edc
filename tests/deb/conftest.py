"""The Debian package tier: builds the .deb once per session (`make deb`) and checks it
with lintian, dpkg and man. Every test here is marked `deb`; they need the packaging
tools scripts/setup installs and take a few seconds (the build) plus lintian's time."""

from __future__ import annotations

from pathlib import Path

import pytest

from .debbuild import Built, build_deb

_HERE = Path(__file__).resolve().parent


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "deb: builds and checks the Debian package")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    for item in items:
        if Path(str(item.fspath)).resolve().is_relative_to(_HERE):
            item.add_marker(pytest.mark.deb)


@pytest.fixture(scope="session")
def built() -> Built:
    return build_deb()
