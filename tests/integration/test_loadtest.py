"""A small load test in the suite: correctness only, no speed goals."""

from __future__ import annotations

import argparse

import pytest

from bench.loadtest import run

pytestmark = [pytest.mark.integration, pytest.mark.timeout(600)]


@pytest.mark.parametrize("template", ["classic", "duo"])
async def test_loadtest_concurrent_matches_lose_nothing(
    serve_url: str, template: str
) -> None:
    matches = 20 if template == "classic" else 6
    args = argparse.Namespace(
        url=serve_url.replace("http://", "ws://"),
        matches=matches,
        concurrency=matches,
        template=template,
        timeout_s=120.0,
    )

    results = await run(args)

    assert results["matches_completed"] == matches, results["errors"]
    assert results["matches_failed"] == 0
    assert results["lost_events"] == 0
    assert results["duplicate_events"] == 0
    assert results["phantom_events"] == 0
    assert results["kafka_events"] >= matches * 40
    assert results["latency_ms"]["answer_to_robots"]["count"] >= matches * 5
    rounds = results["latency_by_round_ms"]["answer_to_robots"]
    assert sorted(rounds) == ["1", "2", "3", "4", "5"]
    assert all(r["p99"] >= r["p50"] > 0 for r in rounds.values())
