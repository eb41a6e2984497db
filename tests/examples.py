"""How many random examples the slowest property tests draw (each example builds real workspaces).

The counts keep the whole suite within CI's time; `QUNFLOW_TEST_EXAMPLES=4 python -m pytest` draws four
times as many for a thorough run. Failing examples are kept in Hypothesis's database and replayed first.
"""

from __future__ import annotations

import os

SCALE = float(os.environ.get("QUNFLOW_TEST_EXAMPLES", "1"))


def examples(count: int) -> int:
    return max(1, round(count * SCALE))
