"""Ids taken in bulk: as many as asked, new, ascending, even when other takers interleave."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

from infra.database import IdSequences, create_schema, open_pool


def test_ids_taken_in_bulk_are_new_and_ascending(database_url: str) -> None:
    pool = open_pool(database_url, max_size=4)
    try:
        create_schema(pool)
        ids = IdSequences(pool)
        first = ids.take("annotation", 5000)
        assert len(first) == 5000 and first == sorted(set(first))
        assert ids.take("annotation", 0) == []
        with ThreadPoolExecutor(4) as threads:
            batches = list(threads.map(lambda n: ids.take("annotation", n), [3000] * 8))
        everything = first + [ident for batch in batches for ident in batch]
        assert len(set(everything)) == len(everything) == 5000 + 8 * 3000
        assert all(batch == sorted(batch) and len(batch) == 3000 for batch in batches)
        assert min(everything[5000:]) > max(first)
    finally:
        pool.close()
