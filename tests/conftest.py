"""Session hooks: the slow-to-settle stacks start at collection (see head_start.py)."""

from __future__ import annotations

import head_start
import pytest


def pytest_collection_finish(session: pytest.Session) -> None:
    if session.config.option.collectonly:
        return
    head_start.start({item.module for item in session.items if hasattr(item.module, "settling")})


def pytest_sessionfinish(session: pytest.Session) -> None:
    head_start.stop_all()
