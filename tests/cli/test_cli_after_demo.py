"""The CLI run after `warroom demo`, in the same folder, acts on the demo's world and never on slack.com."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from bot.config import DEMO_ENV_FILE, LOCAL_SLACK_API_URL, REAL_SLACK_API_URL, Settings
from bot.demo import fresh_database, write_cli_settings
from tests.conftest import ROOT


def warroom(cwd: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("WARROOM_", "SLACK_"))}
    env["PYTHONPATH"] = str(ROOT)
    return subprocess.run([sys.executable, "-m", "bot", *args], cwd=cwd, env=env, capture_output=True, text=True,
                          timeout=120)


def test_cli_after_the_demo_uses_the_demos_database_and_says_a_missing_incident_in_one_line(tmp_path: Path) -> None:
    demo_db = tmp_path / ".warroom-demo" / "warroom.db"
    (tmp_path / "runbooks").symlink_to(ROOT / "runbooks")
    write_cli_settings(tmp_path / DEMO_ENV_FILE, {"WARROOM_DATABASE_URL": f"sqlite:///{demo_db}",
                                                  "SLACK_API_URL": "http://127.0.0.1:1/api/"})
    assert warroom(tmp_path, "db", "upgrade").returncode == 0  # what the demo did when it started
    result = warroom(tmp_path, "evals", "export", "7")
    assert (result.returncode, result.stdout, result.stderr) == (1, "", "warroom: There is no incident #7.\n")
    assert not (tmp_path / "warroom.db").exists()
    result = warroom(tmp_path, "postmortem", "7")
    assert (result.returncode, result.stderr) == (1, "warroom: There is no incident #7.\n")


def test_cli_without_a_database_says_so_instead_of_creating_one(tmp_path: Path) -> None:
    (tmp_path / "runbooks").symlink_to(ROOT / "runbooks")
    result = warroom(tmp_path, "evals", "export", "1")
    assert (result.returncode, result.stderr) == (
        1, "warroom: no database at warroom.db: run `warroom demo` in this folder first, or set WARROOM_DATABASE_URL\n")
    assert list(tmp_path.iterdir()) == [tmp_path / "runbooks"]


def test_env_file_overrides_the_demo_settings(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    write_cli_settings(DEMO_ENV_FILE, {"WARROOM_DATABASE_URL": "sqlite:///demo.db", "WARROOM_AUTO_CLOSE_DAYS": "3"})
    (tmp_path / ".env").write_text("WARROOM_DATABASE_URL=sqlite:///mine.db\n")
    settings = Settings()
    assert settings.database_url == "sqlite:///mine.db" and settings.auto_close_days == 3


def test_the_development_token_talks_to_the_local_emulator_never_to_slack_com() -> None:
    assert Settings(_env_file=None).slack_api_url == LOCAL_SLACK_API_URL  # type: ignore[call-arg]
    assert Settings(_env_file=None, SLACK_BOT_TOKEN="xoxb-1-real").slack_api_url == REAL_SLACK_API_URL  # type: ignore[call-arg]
    explicit = Settings(_env_file=None, SLACK_API_URL="http://127.0.0.1:3999/api")  # type: ignore[call-arg]
    assert explicit.slack_api_url == "http://127.0.0.1:3999/api/"


def test_a_restarted_demo_starts_from_an_empty_database_like_its_emulator(tmp_path: Path) -> None:
    old = tmp_path / "warroom.db"
    for path in (old, tmp_path / "warroom.db-wal", tmp_path / "warroom.db-shm"):
        path.write_text("yesterday's incidents")
    assert fresh_database(tmp_path) == old
    assert sorted(p.name for p in tmp_path.iterdir()) == []
