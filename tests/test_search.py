"""core.search: the query-embedding cache returns the same hits and encodes each query once per model revision."""
import threading

import numpy as np
import pytest

from core import search as core_search
from core.catalog import load_catalog
from core.services import Services


@pytest.fixture(scope="module")
def demo():
    services = Services(load_catalog())
    return services.encoder("demo-clip"), services.index("demo-clip", "demo scenes (test split + never-seen concepts)")


class Counting:
    """The encoder, counting its text encodes."""

    def __init__(self, enc, revision=None):
        self.enc, self.calls = enc, 0
        self.name, self.revision = enc.name, revision or enc.revision

    def encode_text(self, texts):
        self.calls += 1
        return self.enc.encode_text(texts)

    def __getattr__(self, name):
        return getattr(self.enc, name)


def test_a_cached_query_returns_the_same_hits(demo, monkeypatch):
    monkeypatch.setattr(core_search, "_query_cache", core_search.BoundedCache(8, log_evictions=False))
    enc, index = Counting(demo[0]), demo[1]
    first = core_search.search_text(enc, index, "a dog on a blue background", 10)
    again = core_search.search_text(enc, index, "a dog on a blue background", 10)
    assert enc.calls == 1
    assert [(h.id, h.score) for h in again.hits] == [(h.id, h.score) for h in first.hits]
    uncached = index.search(demo[0].encode_text(["a dog on a blue background"]), 10)
    assert [h.id for h in first.hits] == [str(index.meta.iloc[int(i)]["id"]) for i in uncached[1][0]]


def test_the_cache_is_per_model_revision_bounded_and_read_only(demo, monkeypatch):
    monkeypatch.setattr(core_search, "_query_cache", core_search.BoundedCache(2, log_evictions=False))
    old, new = Counting(demo[0], "rev-a"), Counting(demo[0], "rev-b")
    xq = core_search.query_embedding(old, "a cat")
    core_search.query_embedding(new, "a cat")
    assert (old.calls, new.calls) == (1, 1)
    with pytest.raises(ValueError):
        xq[0, 0] = 1.0  # shared by every caller
    core_search.query_embedding(old, "a tree")
    core_search.query_embedding(old, "a car")
    assert len(core_search._query_cache) == 2
    core_search.query_embedding(old, "a cat")  # evicted, encoded again
    assert old.calls == 4


def test_concurrent_identical_queries_encode_once(demo, monkeypatch):
    monkeypatch.setattr(core_search, "_query_cache", core_search.BoundedCache(8, log_evictions=False))
    enc = Counting(demo[0])
    out = []
    threads = [threading.Thread(target=lambda: out.append(core_search.query_embedding(enc, "a pizza"))) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert enc.calls == 1 and all(np.array_equal(x, out[0]) for x in out)
