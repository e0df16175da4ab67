"""bot.jsonbody: the nesting limit is the same whether or not a body takes the quick path."""

from __future__ import annotations

import pytest

from bot.jsonbody import MAX_DEPTH, BadRequest, parse_json


def nested(levels: int, inner: str) -> bytes:
    return ("[" * levels + inner + "]" * levels).encode()


# "é" spelt as an escape sends the body through the full walk, which also checks every string.
@pytest.mark.parametrize("inner", ["1", '"\\u00e9"'], ids=["quick path", "full walk"])
def test_a_value_at_the_nesting_limit_is_accepted_and_one_level_deeper_is_refused(inner):
    assert parse_json(nested(MAX_DEPTH, inner), max_string=100) is not None
    with pytest.raises(BadRequest, match="nesting"):
        parse_json(nested(MAX_DEPTH + 1, inner), max_string=100)


def test_a_wide_body_with_more_brackets_than_the_limit_is_not_mistaken_for_a_deep_one():
    wide = ("[" + ",".join(["{}"] * (MAX_DEPTH * 3)) + "]").encode()
    assert len(parse_json(wide, max_string=10_000)) == MAX_DEPTH * 3
