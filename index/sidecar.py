"""`index.json`: what an index was built from, so loading it with another model is an error, never a wrong answer."""
from __future__ import annotations

import json
import operator
from dataclasses import MISSING, asdict, dataclass, field, fields
from datetime import datetime, timezone

FORMAT_VERSION = 1  # bump when a field changes meaning or a required one is added
METRIC = "inner_product"  # the only metric: L2-normalised vectors, so scores are cosine similarities


@dataclass
class IndexInfo:
    model: str  # model name as in the catalog; load_index refuses an index built by another one
    model_revision: str | None  # commit or tag of the weights, None for local folders without one
    dim: int
    metric: str  # always METRIC
    count: int  # vectors in index.faiss == rows in meta.parquet
    factory: str  # faiss index_factory string: "Flat", "IVF1024,PQ32", "HNSW32", ...
    dataset: str
    dataset_revision: str | None
    split: str
    build_date: str  # ISO 8601, UTC; see utc_now()
    normalized: bool = True
    recall_at_10_vs_exact: float | None = None  # measured at build time with the search_params below
    search_params: dict = field(default_factory=dict)  # faiss ParameterSpace names: {"nprobe": 16}, {"efSearch": 64}
    extra: dict = field(default_factory=dict)  # free-form, e.g. build timings

    def __post_init__(self) -> None:
        try:  # accept numpy integers, refuse floats and strings
            self.dim, self.count = operator.index(self.dim), operator.index(self.count)
        except TypeError:
            raise ValueError(f"IndexInfo.dim and count must be ints, got {self.dim!r} and {self.count!r}") from None
        if self.dim < 1 or self.count < 0:
            raise ValueError(f"IndexInfo needs dim >= 1 and count >= 0, got dim={self.dim}, count={self.count}")
        if self.metric != METRIC:
            raise ValueError(f"IndexInfo.metric must be {METRIC!r}, got {self.metric!r}")

    def to_json(self) -> str:
        return json.dumps({"format_version": FORMAT_VERSION, **asdict(self)}, indent=2, sort_keys=False) + "\n"

    @classmethod
    def from_json(cls, text: str) -> IndexInfo:
        """Parse index.json; a ValueError says which fields are unknown, missing or of another format version."""
        try:
            data = json.loads(text)
        except json.JSONDecodeError as e:
            raise ValueError(f"index.json is not valid JSON ({e})") from None
        if not isinstance(data, dict):
            raise ValueError(f"index.json must hold a JSON object, found {type(data).__name__}")
        _check_version(data.pop("format_version", None))
        known = {f.name for f in fields(cls)}
        required = {f.name for f in fields(cls) if f.default is MISSING and f.default_factory is MISSING}
        if unknown := sorted(set(data) - known):
            raise ValueError(f"index.json has unknown fields {unknown}; known fields are {sorted(known)}")
        if missing := sorted(required - set(data)):
            raise ValueError(f"index.json lacks required fields {missing}")
        return cls(**data)


def _check_version(version: object) -> None:
    if version is None:
        raise ValueError(f"index.json has no format_version (expected {FORMAT_VERSION})")
    if version != FORMAT_VERSION:
        newer = isinstance(version, int) and version > FORMAT_VERSION
        hint = "it was written by a newer version of this code; update it" if newer else "rebuild the index"
        raise ValueError(f"index.json has format_version {version!r}, this code reads {FORMAT_VERSION}; {hint}")


def utc_now() -> str:
    """The current time as the ISO 8601 UTC string `build_date` expects."""
    return datetime.now(timezone.utc).isoformat(timespec="seconds")
