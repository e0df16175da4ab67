from __future__ import annotations

import pytest
from hypothesis import given, settings
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
        ("jwt eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjM0NTY3ODkwIn0.dozjgNryP4J3jVmNHl0w5N_XgL0n3I9PlFUP0THsR8U",
         "jwt [secret]"),
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


# ---- credential formats: every generated token of every format is gone, whatever surrounds it ----

_ALNUM = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789"
_B64URL = _ALNUM + "_-"


def _chars(alphabet: str, low: int, high: int) -> st.SearchStrategy[str]:
    return st.text(alphabet=alphabet, min_size=low, max_size=high)


def _prefixed(prefixes: list[str], alphabet: str, low: int, high: int) -> st.SearchStrategy[tuple[str, str]]:
    return st.tuples(st.sampled_from(prefixes), _chars(alphabet, low, high))


def _jwt(parts: tuple[str, str, str]) -> tuple[str, str]:
    header, payload, signature = parts
    return "eyJ", f"{header}.eyJ{payload}.{signature}"


def _private_key(lines: list[str]) -> tuple[str, str]:
    body = "\n".join(lines)
    return "-----BEGIN RSA PRIVATE KEY-----\n", f"{body}\n-----END RSA PRIVATE KEY-----"


# (visible prefix, secret body): the body must not survive in any part of FRAGMENT length or more.
CREDENTIALS: dict[str, st.SearchStrategy[tuple[str, str]]] = {
    "github": _prefixed(["ghp_", "gho_", "ghu_", "ghs_", "ghr_"], _ALNUM, 36, 40),
    "github-fine-grained": _prefixed(["github_pat_"], _ALNUM + "_", 82, 82),
    "gitlab": _prefixed(["glpat-"], _B64URL, 20, 26),
    "slack-token": _prefixed(["xoxb-", "xoxp-", "xoxa-", "xoxe-1-", "xoxe.xoxp-1-", "xapp-1-"], _ALNUM + "-", 24, 60),
    "slack-webhook": _prefixed(["https://hooks.slack.com/services/"], _ALNUM + "/", 30, 50),
    "stripe": _prefixed(["sk_live_", "rk_live_", "sk_test_", "rk_test_"], _ALNUM, 24, 99),
    "openai": _prefixed(["sk-", "sk-proj-"], _B64URL, 40, 120),
    "anthropic": _prefixed(["sk-ant-api03-"], _B64URL, 80, 95),
    "huggingface": _prefixed(["hf_"], _ALNUM, 34, 34),
    "google": _prefixed(["AIza"], _B64URL, 35, 35),
    "aws-access-key": _prefixed(["AKIA", "ASIA"], "ABCDEFGHIJKLMNOPQRSTUVWXYZ234567", 16, 16),
    "aws-secret-key": _prefixed(["aws_secret_access_key = ", "AWS_SECRET_ACCESS_KEY=", '"SecretAccessKey": "'],
                                _ALNUM + "/+", 40, 40),
    "jwt": st.tuples(_chars(_B64URL, 10, 40), _chars(_B64URL, 10, 200), _chars(_B64URL, 16, 86)).map(_jwt),
    "private-key": st.lists(_chars(_ALNUM + "+/=", 64, 64), min_size=1, max_size=6).map(_private_key),
    "basic-auth-url": st.tuples(st.sampled_from(["https://", "postgres://", "amqp://"]),
                                _chars(_ALNUM, 1, 12), _chars(_ALNUM + "!$*~", 8, 30))
                        .map(lambda t: (t[0], f"{t[1]}:{t[2]}@db.internal:5432/app")),
}
_PUNCTUATION = st.text(alphabet=" \t\n!\"#$%&'()*+,-./:;<=>?@[\\]^_`{|}~", max_size=4)
_PROSE_WORDS = st.lists(st.sampled_from(["the", "deploy", "failed", "with", "key", "token", "order", "1234",
                                         "Bearer", "secret", "is", "2026-03-16", "v42"]), max_size=6).map(" ".join)


def _fragments(secret: str, size: int = 12) -> list[str]:
    return [secret[i:i + size] for i in range(0, max(1, len(secret) - size + 1))]


# Site patterns a team might add; one that takes a piece of a token must not uncover the rest.
_SITE_PATTERNS = st.lists(st.sampled_from([r"\d{4}", r"[A-Z]{3}-\d+", r"(?i)customer #\d+", r"[a-z]{5}", r"_",
                                           r"acct_[a-z0-9]+", r"db\.internal"]), max_size=3)


@pytest.mark.parametrize("fmt", sorted(CREDENTIALS))
def test_no_credential_of_a_known_format_survives_whatever_surrounds_it(fmt: str) -> None:
    @settings(max_examples=60, deadline=None)
    @given(CREDENTIALS[fmt], _PROSE_WORDS, _PUNCTUATION, _PUNCTUATION, _PROSE_WORDS, _SITE_PATTERNS)
    def check(token: tuple[str, str], before: str, left: str, right: str, after: str, extra: list[str]) -> None:
        prefix, body = token
        text = f"{before} {left}{prefix}{body}{right} {after}"
        redactor = Redactor(extra_patterns=extra)
        for out in (redactor.redact(text), redactor.redact_credentials(text)):
            secret_part = body.split("@")[0] if fmt == "basic-auth-url" else body
            assert not any(piece in out for piece in _fragments(secret_part)), out

    check()


_ORDINARY = st.sampled_from(
    ["The", "deploy", "of", "bundle", "v42", "failed", "at", "02:07", "on", "2026-03-16;", "order", "1234",
     "shipped.", "Refunds", "within", "90", "days", "ask-the-team", "task-runner", "sk-learn", "ghost_town", "hf_",
     "xoxo", "AKIA", "Bearer authentication", "token", "secret:", "key=", "eyJ", "glpat", "https://example.com/runbooks/llm",
     "http://127.0.0.1:8080/incidents/7", "(see", "above)", "snake_case_name", "BEGIN", "PRIVATE", "KEY", "AIza",
     "pk_live", "-----", "user:", "pass@"])


@given(st.lists(_ORDINARY, min_size=1, max_size=20), st.sampled_from([" ", "\n", ", "]))
def test_ordinary_prose_passes_through_unchanged(words: list[str], separator: str) -> None:
    text = separator.join(words)
    assert Redactor().redact_credentials(text) == text


def test_a_disabled_rule_lets_its_format_through_and_others_still_apply() -> None:
    redactor = Redactor(disabled=["email"])
    assert redactor.redact("mail jane@example.com key ghp_" + "a" * 36) == "mail jane@example.com key [secret]"


def test_an_unknown_rule_name_is_refused_with_the_names_that_exist() -> None:
    with pytest.raises(RedactionPatternError, match=r"unknown redaction rule.*'emails'.*email"):
        Redactor(disabled=["emails"])


def test_a_token_cut_short_after_its_prefix_still_goes() -> None:
    for cut in ("ghp_Zq8vK2mN4", "github_pat_11ABCDEFG", "glpat-xY12abcd9", "sk_live_51Hx9aQz"):
        assert Redactor().redact_credentials(f"response: {{\"token\": \"{cut}…") == "response: {\"token\": \"[secret]…"


def test_redact_credentials_keeps_emails_and_phone_numbers() -> None:
    text = "paged jane@example.com on +1 415 555 0100, token xoxb-1234567890-abcdefghij"
    assert Redactor().redact_credentials(text) == "paged jane@example.com on +1 415 555 0100, token [secret]"


def test_a_known_secret_is_masked_whole_and_in_part() -> None:
    token = "s3cret-control-token-4242-Zq8v"
    redactor = Redactor(known_secrets=[token])
    assert redactor.redact_credentials(f"echo {token}!") == "echo [secret]!"
    # The control plane echoed half of it, or a snippet was cut in the middle of it.
    assert redactor.redact_credentials(f"got {token[:15]} and {token[-14:]}") == "got [secret] and [secret]"
    # Words the token shares with ordinary text stay.
    assert redactor.redact_credentials("the control token") == "the control token"


def test_the_settings_redactor_masks_warroom_tokens_but_not_values_too_short_to_tell_from_text() -> None:
    from bot.config import Settings

    redactor = Settings(WARROOM_ALERT_TOKEN="alert-Zq8vK2mN4bX7cR1t").redactor(known_secrets=["on", "Hx9-Lm2-Qp7-Zt4"])
    assert redactor.redact_credentials("token alert-Zq8vK2mN4b, key Hx9-Lm2-Qp7-Zt4") == "token [secret], key [secret]"
    assert redactor.redact_credentials("the alert is on") == "the alert is on"


_SECRET_CHARS = _ALNUM + "-_.:*/+="


@given(st.text(_SECRET_CHARS, min_size=12, max_size=80), st.data(),
       st.text(_SECRET_CHARS + " ", max_size=30), st.text(_SECRET_CHARS + " ", max_size=30))
def test_any_twelve_characters_of_a_known_secret_are_masked_wherever_they_appear(
    secret: str, data: st.DataObject, before: str, after: str,
) -> None:
    start = data.draw(st.integers(0, len(secret) - 12))
    end = data.draw(st.integers(start + 12, len(secret)))
    out = Redactor(known_secrets=[secret]).redact_credentials(before + secret[start:end] + after)
    assert not any(piece in out for piece in _fragments(secret))
