"""Time the Redactor on the strings an eval export redacts: 100,000 typical questions and answers.

Most are plain prose; some carry an email, a phone number, an order number or a date, and one in
a hundred a pasted credential, as traces of a support assistant do. Prints strings per second.

    .venv/bin/python bench/redact.py [--strings 100000] [--repeat 3]
"""

from __future__ import annotations

import argparse
import random
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bot.redact import Redactor

_PROSE = [
    "What is the refund window for order {n}?",
    "The refund window for order {n} is 90 days. Contact support at help@example.com.",
    "Give the order status as JSON for order {n}",
    "Order {n} has shipped and should arrive on 2026-03-16.",
    "Refunds are available within 90 days, no receipt needed. Our team answers within one business day, "
    "and you can track the parcel from the link in your confirmation email.",
    "Call us on +1 415 555 0100 if the parcel has not arrived by Friday.",
    "I could not find that policy; the closest match is the returns page for bundle v42.",
]
_PASTED = [
    "my key is sk-proj-{n}abcdefghijklmnopqrstuvwx, why does it fail?",
    "token ghp_{n}aBcDeFgHiJkLmNoPqRsTuVwXyZ0123 stopped working",
]


def typical_strings(count: int, seed: int = 7) -> list[str]:
    rng = random.Random(seed)
    out = []
    for i in range(count):
        template = rng.choice(_PASTED) if i % 100 == 0 else rng.choice(_PROSE)
        out.append(template.format(n=rng.randrange(1000, 99999)))
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--strings", type=int, default=100_000)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    texts = typical_strings(args.strings)
    redactor = Redactor()
    best = float("inf")
    for _ in range(args.repeat):
        started = time.perf_counter()
        for text in texts:
            redactor.redact(text)
        best = min(best, time.perf_counter() - started)
    print(f"redact {args.strings:,} typical strings: best of {args.repeat} {best:.2f} s "
          f"({args.strings / best:,.0f} strings/s)")


if __name__ == "__main__":
    main()
