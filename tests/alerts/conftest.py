from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from bot.config import Settings
from bot.db import transaction
from bot.runtime import Runtime
from bot.web import create_app
from tests.conftest import ALERT_TOKEN
from tests.support import ServerThread


class Warroom:
    """A running warroom (real HTTP over loopback) and a client that posts like Alertmanager."""

    def __init__(self, runtime: Runtime, url: str) -> None:
        self.runtime = runtime
        self.url = url
        self.http = httpx.Client(base_url=url, timeout=10)

    def post(self, path: str, body: Any = None, *, content: bytes | None = None, token: str | None = ALERT_TOKEN,
             headers: dict[str, str] | None = None) -> httpx.Response:
        hdrs = {"Content-Type": "application/json", "User-Agent": "Alertmanager/0.25.0", **(headers or {})}
        if token is not None:
            hdrs["Authorization"] = f"Bearer {token}"
        if content is None:
            return self.http.post(path, json=body, headers=hdrs)
        return self.http.post(path, content=content, headers=hdrs)

    def alertmanager(self, body: Any) -> httpx.Response:
        return self.post("/webhooks/alertmanager", body)

    def incidents(self, **params: str) -> list[dict[str, Any]]:
        response = self.http.get("/api/incidents", params=params)
        assert response.status_code == 200, response.text
        return response.json()

    def incident(self, incident_id: int) -> dict[str, Any]:
        response = self.http.get(f"/api/incidents/{incident_id}")
        assert response.status_code == 200, response.text
        return response.json()

    def count(self, model: type) -> int:
        from sqlalchemy import func, select
        with transaction(self.runtime.engine) as session:
            return session.execute(select(func.count()).select_from(model)).scalar_one()


@pytest.fixture
def warroom(settings: Settings) -> Iterator[Warroom]:
    runtime = Runtime.build(settings)
    server = ServerThread(create_app(runtime)).start()
    yield Warroom(runtime, server.url)
    server.stop()
    runtime.engine.dispose()
