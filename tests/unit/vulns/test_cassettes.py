"""Recorded osv.dev responses agree with the matcher on the records in the fixture subset."""

from __future__ import annotations

import json

from regward.vulns import load

from .cassettes import CHANGED_AFTER_RECORDING, NARROWER_UPSTREAM, replay, unexplained
from .conftest import vulns_asset


def test_fixture_subset_agrees_with_osv_dev() -> None:
    feed = load(vulns_asset("cassette-records.zip"))
    queries = json.loads(vulns_asset("cassette-queries.json").read_text())["queries"]
    result = replay(feed, queries)
    assert result.compared == 39
    assert result.with_local_answers == 24
    assert unexplained(result.differences) == []
    assert result.agreeing == 31
    explained = {record_id for difference in result.differences for record_id in difference.extra}
    assert explained <= CHANGED_AFTER_RECORDING.keys() | set().union(*NARROWER_UPSTREAM.values())


def test_stdlib_two_component_version_is_the_first_release() -> None:
    # osv.dev read the query "stdlib 1.19" as Go 1.19.0; the replay above depends on that reading.
    feed = load(vulns_asset("cassette-records.zip"))
    queries = [
        q
        for q in json.loads(vulns_asset("cassette-queries.json").read_text())["queries"]
        if q["version"] == "1.19"
    ]
    result = replay(feed, queries)
    assert result.compared == 1
    assert unexplained(result.differences) == []
