from __future__ import annotations

import json
import logging
from collections.abc import Iterator

import pytest

from bot.config import Settings
from bot.logs import configure

PASTED = "glpat-" + "x9Yz8Wv7Ut6Sr5Qp4On3"
OWN_TOKEN = "alert-token-7Hq2Vn9Lm4Kc8Xs"


@pytest.fixture
def warroom_logging() -> Iterator[None]:
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    yield
    root.handlers[:], root.level = handlers, level


@pytest.mark.parametrize("fmt", ["text", "json"])
def test_a_credential_in_a_log_message_or_traceback_never_reaches_the_log(
    fmt: str, warroom_logging: None, capsys: pytest.CaptureFixture[str],
) -> None:
    configure(fmt, "INFO", Settings(WARROOM_ALERT_TOKEN=OWN_TOKEN).redactor())
    log = logging.getLogger("bot.test")
    log.warning("control plane said %s", {"error": f"token {PASTED} revoked", "auth": "Bearer Zx81KqLm0PaTt"})
    try:
        raise RuntimeError(f"webhook refused token {OWN_TOKEN[:16]}")
    except RuntimeError:
        log.exception("request failed")
    err = capsys.readouterr().err
    assert "control plane said" in err and "request failed" in err and "RuntimeError" in err
    for leaked in (PASTED, PASTED[:12], "Zx81KqLm0PaTt", OWN_TOKEN[:16]):
        assert leaked not in err
    if fmt == "json":
        assert [json.loads(line)["level"] for line in err.splitlines() if line.startswith("{")] == ["warning", "error"]


def test_site_patterns_from_the_settings_reach_the_log(warroom_logging: None,
                                                       capsys: pytest.CaptureFixture[str]) -> None:
    configure("text", "INFO", Settings(WARROOM_REDACT_PATTERNS='["ACME-\\\\d{6}"]').redactor())
    logging.getLogger("bot.test").warning("customer ACME-123456 pasted their account")
    err = capsys.readouterr().err
    assert "customer [redacted] pasted" in err


def test_a_bad_redaction_setting_stops_the_start_naming_it() -> None:
    with pytest.raises(ValueError, match=r"WARROOM_REDACT_PATTERNS.*#1 '\(unclosed' is not a valid regex"):
        Settings(WARROOM_REDACT_PATTERNS='["(unclosed"]')
    with pytest.raises(ValueError, match=r"unknown redaction rule\(s\) 'phones'"):
        Settings(WARROOM_REDACT_DISABLE="email, phones")
    with pytest.raises(ValueError, match="expected a JSON list of regular expressions"):
        Settings(WARROOM_REDACT_PATTERNS="ACME-\\d+")


def test_a_log_call_with_bad_arguments_still_logs_redacted_and_raises_nothing(
    warroom_logging: None, capsys: pytest.CaptureFixture[str],
) -> None:
    configure("text", "INFO")
    logging.getLogger("bot.test").warning("two values %s %s", PASTED)
    err = capsys.readouterr().err
    assert "two values" in err and PASTED not in err
