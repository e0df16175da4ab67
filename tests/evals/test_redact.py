from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from bot.redact import RedactionPatternError, Redactor


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("mail jane.doe+vip@example.co.uk today", "mail [email] today"),
        ("call +1 415 555 0100", "call [phone]"),
        ("call (415) 555-0100.", "call [phone]."),
        ("or +14155550100", "or [phone]"),
        ("uk 020 7946 0958", "uk [phone]"),
        ("key sk-proj-abcdefghijklmnop1234", "key [secret]"),
        ("slack xoxb-1234567890-abcdefghij", "slack [secret]"),
        ("aws AKIAIOSFODNN7EXAMPLE", "aws [secret]"),
        ("Authorization: Bearer abc.def-ghi_123456", "Authorization: Bearer [secret]"),
        ("sig 9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08", "sig [secret]"),
        ("jwt eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjM0NTY3ODkwIn0.dozjgNryP4J3jVmNHl0w5N_XgL0n3I9PlFUP0THsR8U", "jwt [secret]"),
        ("card 4111 1111 1111 1111", "card [card]"),
        ("card 5500-0000-0000-0004 thanks", "card [card] thanks"),
    ],
)
def test_default_patterns_replace_personal_data_and_secrets(text: str, expected: str) -> None:
    assert Redactor().redact(text) == expected


@pytest.mark.parametrize(
    "text",
    [
        "Give the order status as JSON for order 1234",
        "Order 1234 has shipped and should arrive on 2026-03-16.",
        "Refunds are available within 90 days, no receipt needed.",
        "incident INC-20260314-0001 at 02:07, bundle v42",
        "4111-1111-1111-1112 fails the Luhn check",
    ],
)
def test_ordinary_text_and_numbers_are_left_alone(text: str) -> None:
    assert Redactor().redact(text) == text


def test_redact_obj_walks_nested_structures_and_keeps_keys_and_numbers() -> None:
    value = {
        "user": {"email": "a@b.io", "phones": ["+1 415 555 0100"]},
        "messages": [{"role": "user", "content": "my key is sk-abcdefghijklmnopqrstu"}],
        "count": 3,
        "pair": ("x@y.dev", None),
    }
    assert Redactor().redact_obj(value) == {
        "user": {"email": "[email]", "phones": ["[phone]"]},
        "messages": [{"role": "user", "content": "my key is [secret]"}],
        "count": 3,
        "pair": ("[email]", None),
    }


def test_extra_patterns_are_applied_as_redacted() -> None:
    redactor = Redactor(extra_patterns=[r"ACME-\d{6}", r"(?i)customer #\d+"])
    assert redactor.redact("ticket ACME-123456 for Customer #42") == "ticket [redacted] for [redacted]"


def test_a_bad_extra_pattern_is_refused_with_a_clear_message() -> None:
    with pytest.raises(RedactionPatternError, match=r"#2 '\(unclosed' is not a valid regex"):
        Redactor(extra_patterns=[r"ok\d", "(unclosed"])


def test_a_pattern_matching_the_empty_string_is_refused() -> None:
    with pytest.raises(RedactionPatternError, match="matches the empty string"):
        Redactor(extra_patterns=[r"\d*"])


# Text made of the pieces the patterns look for, so the hints are tested where they matter.
_PIECES = st.sampled_from(["4111 1111 1111 1111", "+1 415 555 0100", "(415) 555-0100", "020 7946 0958", "123456",
                           "12345", "jane@example.com", "@", "sk-", "sk-abcdefghijklmnop12", "xoxb-1234567890-ab",
                           "AKIAIOSFODNN7EXAMPLE", "Bearer abcdefgh1", "eyJabcdefgh.ijklmnop.qrstuvwx", "-", ".", " ",
                           "order 9", "a", "0", "9f86d081884c7d659a2feaa0c55ad015"])


@given(st.lists(_PIECES, max_size=12).map("".join))
def test_the_cheap_hints_never_change_what_is_redacted(text: str) -> None:
    # The hints only skip patterns that cannot match: the result is that of every pattern, in order.
    redactor = Redactor()
    expected = text
    for rule in redactor._rules:
        expected = rule.pattern.sub(rule.replace, expected)
    assert redactor.redact(text) == expected
