"""`index.json`: what an index was built from, so a mismatched load is an error, never a wrong answer."""
from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field, fields

FORMAT_VERSION = 1


@dataclass
class IndexInfo:
    model: str  # catalog model name the vectors come from
    model_revision: str | None
    dim: int
    metric: str  # "inner_product" on L2-normalised vectors, i.e. cosine
    count: int
    factory: str  # faiss index_factory string, e.g. "Flat", "IVF1024,PQ32", "HNSW32"
    dataset: str
    dataset_revision: str | None
    split: str
    build_date: str  # ISO 8601, UTC
    normalized: bool = True
    recall_at_10_vs_exact: float | None = None  # measured at build time; 1.0 for Flat
    search_params: dict = field(default_factory=dict)  # e.g. {"nprobe": 16} or {"efSearch": 64}
    extra: dict = field(default_factory=dict)

    def to_json(self) -> str:
        return json.dumps({"format_version": FORMAT_VERSION, **asdict(self)}, indent=2) + "\n"

    @classmethod
    def from_json(cls, text: str) -> IndexInfo:
        data = json.loads(text)
        version = data.pop("format_version", None)
        if version != FORMAT_VERSION:
            raise ValueError(f"index.json format_version {version!r} is not {FORMAT_VERSION}")
        known = {f.name for f in fields(cls)}
        unknown = set(data) - known
        if unknown:
            raise ValueError(f"index.json has unknown fields {sorted(unknown)}")
        try:
            return cls(**data)
        except TypeError as e:
            raise ValueError(f"index.json is incomplete: {e}") from None
