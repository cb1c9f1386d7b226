"""Fixtures for the whole suite."""

from __future__ import annotations

from collections.abc import Iterator

import pytest


@pytest.fixture(scope="session", autouse=True)
def data_home_outside_the_checkout(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """A test that does not set cache_dir writes into a temporary folder, never into the
    checkout's data/ (tests of the default itself unset SEQ2SEQ_CACHE)."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("SEQ2SEQ_CACHE", str(tmp_path_factory.mktemp("data_home")))
        yield
