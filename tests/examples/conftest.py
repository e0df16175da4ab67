from __future__ import annotations

from collections.abc import Iterator

import pytest
from llm_loopback import Recorder, serve


@pytest.fixture
def recorder() -> Iterator[tuple[Recorder, str]]:
    rec = Recorder()
    with serve(rec.app) as url:
        yield rec, url
