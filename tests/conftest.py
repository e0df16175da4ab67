"""Shared fixtures: every database test runs on SQLite and on PostgreSQL (127.0.0.1:5432).

Both start from one migrated template per test run (per xdist worker): SQLite copies the template
file into the test's tmp_path, PostgreSQL makes a throwaway copy (``CREATE DATABASE … TEMPLATE``),
dropped afterwards. Migrating once instead of per test saves the Alembic run on every SQLite test.
"""

from __future__ import annotations

import os
import shutil
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

import httpx
import psycopg
import pytest

from bot.config import Settings
from bot.runtime import Runtime
from bot.store.db import make_engine, transaction, upgrade

if TYPE_CHECKING:
    from bot.compose import Warroom as ComposedWarroom

ROOT = Path(__file__).resolve().parent.parent
PG_ADMIN_URL = os.environ.get("WARROOM_TEST_PG", "postgresql://postgres@127.0.0.1:5432/postgres")
ALERT_TOKEN = "test-alert-token"
SIGNING_SECRET = "test-signing-secret"
READER = {"Authorization": f"Bearer {ALERT_TOKEN}"}  # the incident API's reads take the ingest token

_ENV_PREFIXES = ("WARROOM_", "SLACK_")


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """Tests start from a clean environment: nothing from the developer's shell leaks in."""
    for name in list(os.environ):
        if name.startswith(_ENV_PREFIXES):
            monkeypatch.delenv(name)


def _pg_admin(sql: str) -> None:
    with psycopg.connect(PG_ADMIN_URL, autocommit=True) as conn:
        conn.execute(sql)


def _pg_url(name: str) -> str:
    return PG_ADMIN_URL.rsplit("/", 1)[0] + "/" + name


@pytest.fixture(scope="session")
def pg_template() -> Iterator[str]:
    name = f"warroom_tmpl_{uuid.uuid4().hex[:8]}"
    _pg_admin(f'CREATE DATABASE "{name}"')
    engine = make_engine(_pg_url(name))
    upgrade(engine)
    engine.dispose()
    yield name
    _pg_admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture(scope="session")
def sqlite_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("sqlite_template") / "warroom.db"
    engine = make_engine(f"sqlite:///{path}")
    upgrade(engine)
    engine.dispose()  # the last connection closing checkpoints the WAL: the one file is the whole database
    assert not path.with_name(path.name + "-wal").exists()
    return path


@pytest.fixture(params=["sqlite", "postgresql"])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    if request.param == "sqlite":
        target = tmp_path / "warroom.db"
        shutil.copyfile(request.getfixturevalue("sqlite_template"), target)
        yield f"sqlite:///{target}"
        return
    template = request.getfixturevalue("pg_template")
    name = f"warroom_test_{uuid.uuid4().hex[:10]}"
    _pg_admin(f'CREATE DATABASE "{name}" TEMPLATE "{template}"')
    yield _pg_url(name)
    _pg_admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def make_settings(database_url: str, **overrides: object) -> Settings:
    values: dict[str, object] = {
        "WARROOM_ENV": "test",
        "WARROOM_DATABASE_URL": database_url,
        "WARROOM_ALERT_TOKEN": ALERT_TOKEN,
        "SLACK_SIGNING_SECRET": SIGNING_SECRET,
        "WARROOM_RUNBOOKS_DIR": ROOT / "runbooks",
        "WARROOM_PLAYBOOKS_DIR": ROOT / "playbooks",
        "WARROOM_WORKER": False,
        "WARROOM_SCHEDULER": False,
        # Runbooks declare automatic actions; tests of the manual flows start without them
        # (tests/automation turns them on).
        "WARROOM_AUTOMATION": False,
        # Each alert group its own incident, as the tests of group identity and of one room's
        # flows expect; tests/alerts/test_correlation.py and test_storm.py use the defaults.
        "WARROOM_CORRELATE": "",
        "WARROOM_STORM_INCIDENTS": 0,
        "WARROOM_STORM_SERVICE_INCIDENTS": 0,
        # The emulator enforces no rate limit unless a test turns it on, and neither does warroom's
        # own count of them (bot.slack.budgets); card updates after alerts are not spaced out.
        # The tests of budgets and spacing set these back.
        "WARROOM_SLACK_BUDGET_SCALE": 1000,
        "WARROOM_CARD_REFRESH_SECONDS": 0,
        # OTLP requests are prepared in the serving process: a pool of worker processes per test app
        # would cost a start-up each. tests/otlp/test_pool.py runs the route with the pool.
        "WARROOM_OTLP_PROCESSES": 0,
    }
    values.update(overrides)
    return Settings(_env_file=None, **values)  # type: ignore[arg-type]


@pytest.fixture
def settings(database_url: str) -> Settings:
    return make_settings(database_url)


class Warroom:
    """A running warroom (real HTTP over loopback) and a client that posts like Alertmanager."""

    def __init__(self, warroom: ComposedWarroom, url: str) -> None:
        self.warroom = warroom  # the composed process (`bot.compose`): its worker, actions, Slack side…
        self.url = url
        self.http = httpx.Client(base_url=url, timeout=10)
        self.csrf = ""

    @property
    def runtime(self) -> Runtime:
        return self.warroom.runtime

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
        response = self.http.get("/api/incidents", params=params, headers=READER)
        assert response.status_code == 200, response.text
        return response.json()

    def incident(self, incident_id: int) -> dict[str, Any]:
        response = self.http.get(f"/api/incidents/{incident_id}", headers=READER)
        assert response.status_code == 200, response.text
        return response.json()

    def sign_in(self, user: str = "U0PRIYA") -> str:
        """Sign ``self.http`` in as ``user`` with a one-time link, as `/incident web` gives; the forms' CSRF token."""
        self.csrf = sign_in(self.http, self.runtime, user)
        return self.csrf

    def count(self, model: type) -> int:
        from sqlalchemy import func, select
        with transaction(self.runtime.engine) as session:
            return session.execute(select(func.count()).select_from(model)).scalar_one()


def sign_in(http: httpx.Client, runtime: Runtime, user: str) -> str:
    """Redeem a fresh sign-in link for ``user`` over HTTP; the session cookie lands in ``http``'s jar."""
    from datetime import timedelta

    from bot import signin

    with transaction(runtime.engine) as session:
        token = signin.issue_link(session, user, valid_for=timedelta(minutes=5))
    response = http.post("/signin", data={"token": token})
    assert response.status_code == 303, response.text
    return signin.Person(user, http.cookies["warroom_session"]).csrf_token


@contextmanager
def serve_warroom(settings: Settings) -> Iterator[Warroom]:
    """A whole warroom process (worker off unless the settings say so) on a free loopback port."""
    from bot.compose import compose
    from bot.web import create_app
    from tests.support import ServerThread

    warroom = compose(settings)
    runtime = warroom.runtime
    server = ServerThread(create_app(warroom)).start()
    try:
        yield Warroom(warroom, server.url)
    finally:
        server.stop()
        runtime.engine.dispose()


@pytest.fixture
def warroom(settings: Settings) -> Iterator[Warroom]:
    with serve_warroom(settings) as running:
        yield running


CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
                 "--disable-sync", "--disable-quic", "--no-first-run"]


@pytest.fixture(scope="session")
def browser() -> Iterator[Any]:
    """Debian's Chromium driven by Playwright (its own browser download cannot work offline)."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        launched = p.chromium.launch(executable_path="/usr/bin/chromium", headless=True, args=CHROMIUM_ARGS)
        yield launched
        launched.close()
