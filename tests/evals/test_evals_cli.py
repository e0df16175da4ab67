"""`warroom evals …` as a user types it: collect, export the suite, replay, and a gate that cannot run."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml
from sqlalchemy.engine import Engine
from typer.testing import CliRunner

from bot.cli import app
from bot.serving import serving
from examples.llm_service import create_app
from tests.conftest import ALERT_TOKEN, SIGNING_SECRET
from tests.evals.suite_support import register_catalogue, seed_incident_from_v42

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def llm_service() -> Iterator[str]:
    with serving(create_app(bundle="v42")) as url:
        yield url


@pytest.fixture
def cli_env(database_url: str, llm_service: str, monkeypatch: pytest.MonkeyPatch) -> str:
    for name, value in {"WARROOM_ENV": "test", "WARROOM_DATABASE_URL": database_url,
                        "WARROOM_ALERT_TOKEN": ALERT_TOKEN, "SLACK_SIGNING_SECRET": SIGNING_SECRET,
                        "WARROOM_WORKER": "false", "WARROOM_SCHEDULER": "false",
                        "WARROOM_EVAL_TARGETS": json.dumps(
                            {"llm-gateway": llm_service + "/v1/answer?bundle={{bundle}}"}),
                        "WARROOM_EVAL_SCHEMA_DIR": str(ROOT / "examples" / "llm_service" / "contracts")}.items():
        monkeypatch.setenv(name, value)
    return llm_service


def test_collect_export_and_replay_from_the_command_line(engine: Engine, cli_env: str, tmp_path: Path) -> None:
    register_catalogue(engine)
    incident = seed_incident_from_v42(engine, cli_env)
    runner = CliRunner()
    collected = runner.invoke(app, ["evals", "collect", str(incident)])
    assert collected.exit_code == 0 and "llm-gateway: 2 new and 0 updated eval cases" in collected.output
    exported = runner.invoke(app, ["evals", "export", "--service", "llm-gateway", "--bundle", "v43",
                                   "--out", str(tmp_path / "suite")])
    assert exported.exit_code == 0, exported.output
    assert "2 cases of llm-gateway (1 labelled)" in exported.output
    config = yaml.safe_load((tmp_path / "suite" / "promptfooconfig.yaml").read_text())
    assert config["providers"][0]["id"] == f"{cli_env}/v1/answer?bundle=v43"
    assert config["providers"][0]["config"]["headers"]["X-Warroom-Eval"] == "export"
    fixed = runner.invoke(app, ["evals", "replay", "--incident", str(incident), "--bundle", "llm-gateway:v43"])
    assert fixed.exit_code == 0, fixed.output
    assert "hallucination: 3 fixed, 0 still failing, 0 newly failing" in fixed.output
    still = runner.invoke(app, ["evals", "replay", "--incident", str(incident), "--bundle", "llm-gateway:v44"])
    assert still.exit_code == 1 and "hallucination: 0 fixed, 3 still failing" in still.output


def test_a_gate_that_cannot_run_exits_2_and_says_why(engine: Engine, cli_env: str) -> None:
    runner = CliRunner()
    unknown = runner.invoke(app, ["evals", "gate", "llm-gateway:v99"])
    assert unknown.exit_code == 2 and "no bundle 'v99'" in unknown.output
    malformed = runner.invoke(app, ["evals", "gate", "v43"])
    assert malformed.exit_code == 2 and "SERVICE:VERSION" in malformed.output
