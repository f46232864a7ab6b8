"""Tests of tag claims: first claim wins, races between threads, and release semantics."""

from __future__ import annotations

import threading
from collections.abc import Sequence

from regward.store import Store

DIGESTS = [f"sha256:{index:064x}" for index in range(8)]


def test_first_claim_wins(store: Store) -> None:
    assert store.claim_tag("team/app", "v1", DIGESTS[0]) is None
    assert store.claim_tag("team/app", "v1", DIGESTS[1]) == DIGESTS[0]
    assert store.get_tag_claim("team/app", "v1") == DIGESTS[0]


def test_reclaim_same_digest_returns_it(store: Store) -> None:
    store.claim_tag("team/app", "v1", DIGESTS[0])

    assert store.claim_tag("team/app", "v1", DIGESTS[0]) == DIGESTS[0]


def test_claims_are_per_repository_and_tag(store: Store) -> None:
    assert store.claim_tag("team/app", "v1", DIGESTS[0]) is None
    assert store.claim_tag("team/app", "v2", DIGESTS[1]) is None
    assert store.claim_tag("team/web", "v1", DIGESTS[2]) is None

    assert store.get_tag_claim("team/app", "v1") == DIGESTS[0]
    assert store.get_tag_claim("team/app", "v2") == DIGESTS[1]
    assert store.get_tag_claim("team/web", "v1") == DIGESTS[2]


def test_tags_are_case_sensitive(store: Store) -> None:
    assert store.claim_tag("team/app", "V1", DIGESTS[0]) is None
    assert store.claim_tag("team/app", "v1", DIGESTS[1]) is None


def test_unclaimed_tag(store: Store) -> None:
    assert store.get_tag_claim("team/app", "v1") is None


def test_release_with_other_digest_keeps_claim(store: Store) -> None:
    store.claim_tag("team/app", "v1", DIGESTS[0])

    store.release_tag("team/app", "v1", DIGESTS[1])

    assert store.get_tag_claim("team/app", "v1") == DIGESTS[0]


def test_release_then_reclaim(store: Store) -> None:
    store.claim_tag("team/app", "v1", DIGESTS[0])

    store.release_tag("team/app", "v1", DIGESTS[0])

    assert store.get_tag_claim("team/app", "v1") is None
    assert store.claim_tag("team/app", "v1", DIGESTS[1]) is None
    assert store.get_tag_claim("team/app", "v1") == DIGESTS[1]


def test_release_touches_only_that_tag(store: Store) -> None:
    store.claim_tag("team/app", "v1", DIGESTS[0])
    store.claim_tag("team/app", "v2", DIGESTS[0])

    store.release_tag("team/app", "v1", DIGESTS[0])

    assert store.get_tag_claim("team/app", "v2") == DIGESTS[0]


def test_release_unclaimed_tag_is_noop(store: Store) -> None:
    store.release_tag("team/app", "v1", DIGESTS[0])

    assert store.get_tag_claim("team/app", "v1") is None


def race(stores: Sequence[Store], repository: str, tag: str) -> list[str | None]:
    """Claim `repository:tag` from one thread per store at once; return each thread's result.

    Thread `i` claims with `DIGESTS[i]`.
    """
    barrier = threading.Barrier(len(stores))
    results: list[str | None] = [None] * len(stores)
    errors: list[Exception] = []

    def claim(index: int) -> None:
        barrier.wait()
        try:
            results[index] = stores[index].claim_tag(repository, tag, DIGESTS[index])
        except Exception as exc:
            # Collected so that the main thread can assert on them.
            errors.append(exc)

    threads = [threading.Thread(target=claim, args=(index,)) for index in range(len(stores))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert errors == []
    return results


def assert_one_winner(results: list[str | None]) -> str:
    """Assert that exactly one claim won and the others saw its digest; return that digest."""
    winners = [index for index, result in enumerate(results) if result is None]
    assert len(winners) == 1, results
    winner = DIGESTS[winners[0]]
    assert all(result == winner for result in results if result is not None), results
    return winner


def test_claim_race_has_one_winner(store: Store) -> None:
    for round_number in range(5):
        tag = f"v{round_number}"

        results = race([store] * len(DIGESTS), "team/app", tag)

        winner = assert_one_winner(results)
        assert store.get_tag_claim("team/app", tag) == winner


def test_claim_race_in_memory_sqlite() -> None:
    with Store("sqlite://") as store:
        store.migrate()

        results = race([store] * len(DIGESTS), "team/app", "v1")

    assert_one_winner(results)


def test_claim_race_between_stores(database_url: str) -> None:
    # Separate Store objects have separate connection pools, as separate processes would.
    stores = [Store(database_url) for _ in range(len(DIGESTS))]
    try:
        stores[0].migrate()

        results = race(stores, "team/app", "v1")
    finally:
        for store in stores:
            store.close()

    assert_one_winner(results)
