from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest
from playbook_harness import CONTROL_TOKEN, PLAYBOOKS_DIR, Gateway, serve

from bot.actions import Playbook, load_playbooks
from examples.llm_service import ServiceState, create_app


@pytest.fixture(scope="session")
def playbooks() -> dict[str, Playbook]:
    return load_playbooks(PLAYBOOKS_DIR)


@pytest.fixture
def gateway() -> Iterator[Gateway]:
    state = ServiceState()
    sent: list[httpx.Request] = []
    # The hook only observes what the real client sends; nothing is faked.
    with serve(create_app(state, control_token=CONTROL_TOKEN)) as url, \
            httpx.Client(event_hooks={"request": [sent.append]}) as client:
        yield Gateway(url=url, state=state, client=client, sent=sent)


@pytest.fixture
def playbook_from(tmp_path: Path) -> Callable[[str], Playbook]:
    """Write a playbook YAML into a temp folder and load it the way warroom does."""

    def load(text: str) -> Playbook:
        (tmp_path / "pb.yaml").write_text(text)
        loaded = load_playbooks(tmp_path)
        return next(iter(loaded.values()))

    return load
