"""The member benchmark, small: qunflow's search and member page find what the plain-SQL floor finds (the
run stops when they disagree), and every measurement is reported."""

from __future__ import annotations

from bench.bench_members import run


def test_the_member_benchmark_runs_small_and_agrees_with_its_floor() -> None:
    results = run(members=1500, queries=20)
    assert results["load_seconds"] > 0
    for name in ("search by external id", "search by phone", "search by given name", "member page"):
        ours, floor = results[name]["ours"], results[name]["floor"]
        assert 0 < ours[0] <= ours[1] and 0 < floor[0] <= floor[1], name
