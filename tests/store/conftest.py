from __future__ import annotations

import pytest

from bot.runtime import Runtime


@pytest.fixture
def runtime(settings):
    runtime = Runtime.build(settings)
    yield runtime
    runtime.engine.dispose()
