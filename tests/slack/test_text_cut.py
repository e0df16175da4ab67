"""Text cut to Slack's limits is redacted as a whole by the process's own redactor: a cut never
leaves part of a site's secret behind, and a rule the site switched off stays off in Slack."""

from __future__ import annotations

from bot.redact import Redactor
from bot.slack.client import redact_readable
from bot.slack.text import cut, safe

ACCOUNT = "ACME-1234567890"


def as_sent(text: str, redactor: Redactor) -> str:
    """What the gateway sends: the call's readable text redacted with the process's redactor."""
    return redact_readable({"text": text}, redactor)["text"]


def test_a_site_secret_at_the_cut_leaves_no_part_of_itself_in_slack() -> None:
    site = Redactor([r"ACME-\d{10}"])
    for filler in range(470, 500):  # the account number falls across the 500-character cut somewhere here
        shown = as_sent(safe(f"customer {'x' * filler} {ACCOUNT} complained", 500), site)
        assert len(shown) <= 500 and "ACME-" not in shown and "1234567" not in shown


def test_a_default_rule_the_site_switched_off_is_off_in_slack_too() -> None:
    text = "failover to sk-prod-database-cluster-01 started"
    site = Redactor(disabled=["openai-anthropic"])
    assert as_sent(safe(text, 500), site) == text


def test_one_long_token_is_cut_after_the_credential_rules() -> None:
    token = "sk-ant-api03-" + "A" * 100
    assert cut(token, 20) == "[secret]"
    assert cut("a" * 600, 10) == "a" * 9 + "…"
