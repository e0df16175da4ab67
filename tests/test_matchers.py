from __future__ import annotations

import re

import pytest
from hypothesis import given
from hypothesis import strategies as st

from bot.matchers import Matcher, MatcherError, Op, parse_matcher, parse_matchers

ALERT = {"slo": "hallucination-rate", "service": "llm-gateway", "model": "primary-70b"}


@pytest.mark.parametrize(
    ("text", "matches_alert"),
    [
        ('slo="hallucination-rate"', True),
        ('slo="latency"', False),
        ('slo!="latency"', True),
        ('slo!="hallucination-rate"', False),
        ('service=~"llm-.*"', True),
        ('service=~"chat-.*"', False),
        ('service!~"chat-.*"', True),
        ('service!~"llm-.*"', False),
    ],
)
def test_each_operator_matches_alert_labels(text: str, matches_alert: bool) -> None:
    assert parse_matcher(text).matches(ALERT) is matches_alert


def test_regex_is_anchored_at_both_ends() -> None:
    assert not parse_matcher('service=~"llm"').matches(ALERT)
    assert not parse_matcher('service=~"gateway"').matches(ALERT)
    assert parse_matcher('service=~"llm-gateway|chat"').matches(ALERT)
    # Python's $ would accept a trailing newline; Alertmanager's anchoring does not.
    assert not parse_matcher('service=~"llm-gateway"').matches({"service": "llm-gateway\n"})


def test_missing_label_is_seen_as_empty_string() -> None:
    assert parse_matcher('team=""').matches(ALERT)
    assert parse_matcher('team!="ml"').matches(ALERT)
    assert parse_matcher('team=~"ml|"').matches(ALERT)
    assert not parse_matcher('team=~".+"').matches(ALERT)
    assert not parse_matcher("team=ml").matches(ALERT)


def test_unquoted_values_and_whitespace_around_tokens() -> None:
    assert parse_matcher("  service =~ llm-.*  ") == Matcher("service", Op.REGEX, "llm-.*")
    assert parse_matcher("slo=") == Matcher("slo", Op.EQUAL, "")
    assert parse_matcher('slo = "  padded  " ') == Matcher("slo", Op.EQUAL, "  padded  ")


def test_quoted_value_escapes() -> None:
    assert parse_matcher(r'quote="she said \"hi\""').value == 'she said "hi"'
    assert parse_matcher(r'path="C:\\tmp"').value == "C:\\tmp"
    assert parse_matcher(r'text="two\nlines"').value == "two\nlines"
    # Any other backslash stays, so regex classes survive quoting as in Alertmanager.
    assert parse_matcher(r'code=~"5\d\d"').matches({"code": "503"})


def test_str_renders_matcher_syntax() -> None:
    assert str(Matcher("slo", Op.EQUAL, "hallucination-rate")) == 'slo="hallucination-rate"'
    assert str(Matcher("q", Op.NOT_EQUAL, 'a"b\\c\nd')) == r'q!="a\"b\\c\nd"'


def test_is_equality_only_for_exact_match() -> None:
    assert parse_matcher("a=b").is_equality
    assert not parse_matcher("a!=b").is_equality
    assert not parse_matcher("a=~b").is_equality


def test_silence_shape_for_alertmanager_api() -> None:
    assert parse_matcher('sloth_slo!~"x.*"').as_silence_matcher() == {
        "name": "sloth_slo", "value": "x.*", "isRegex": True, "isEqual": False,
    }


def test_list_of_matchers_in_braces_keeps_commas_inside_quotes() -> None:
    assert parse_matchers('{slo="a,b", service=~chat-.*, }') == [
        Matcher("slo", Op.EQUAL, "a,b"),
        Matcher("service", Op.REGEX, "chat-.*"),
    ]


@pytest.mark.parametrize(
    ("text", "message", "column"),
    [
        ('slo=>"x"', "unknown operator '=>'", 4),
        ('slo=="x"', "unknown operator '=='", 4),
        ('slo="hallucination', "unterminated quoted value", 5),
        ('slo=~"(oops"', "invalid regex: missing ), unterminated subpattern at position 0", 6),
        ('"slo"="x"', "expected a label name, found '\"'", 1),
        ("9slo=x", "expected a label name, found '9'", 1),
        ("", "expected a label name, found end of text", 1),
        ("slo", "expected an operator (=, !=, =~, !~) after 'slo', found end of text", 4),
        ('slo="x" trailing', "unexpected text after quoted value: 'trailing'", 9),
        ('slo=a"b', "unescaped double quote in unquoted value", 6),
    ],
)
def test_errors_name_the_problem_and_column(text: str, message: str, column: int) -> None:
    with pytest.raises(MatcherError) as caught:
        parse_matcher(text)
    assert str(caught.value) == message
    assert caught.value.column == column


def test_list_error_column_counts_from_the_whole_text() -> None:
    with pytest.raises(MatcherError) as caught:
        parse_matchers('{a="1", b=>"2"}')
    assert caught.value.column == 10


def test_constructing_a_bad_matcher_directly_is_refused() -> None:
    with pytest.raises(MatcherError, match="invalid regex"):
        Matcher("a", Op.REGEX, "(")
    with pytest.raises(MatcherError, match="invalid label name"):
        Matcher("bad-name", Op.EQUAL, "x")


label_names = st.from_regex(r"[a-zA-Z_][a-zA-Z0-9_]{0,12}", fullmatch=True)
values = st.text(max_size=20)


@st.composite
def matchers(draw: st.DrawFn) -> Matcher:
    op = draw(st.sampled_from(list(Op)))
    value = draw(values)
    if op in (Op.REGEX, Op.NOT_REGEX):
        value = re.escape(value)
    return Matcher(draw(label_names), op, value)


@given(matchers())
def test_str_parses_back_to_an_equal_matcher(matcher: Matcher) -> None:
    assert parse_matcher(str(matcher)) == matcher


@given(label_names, values)
def test_escaped_regex_matches_exactly_the_literal(name: str, value: str) -> None:
    matcher = Matcher(name, Op.REGEX, re.escape(value))
    assert matcher.matches({name: value})
    assert not matcher.matches({name: value + "x"})
