"""Evaluations the app computes itself: every Hub model measured on the collections it serves, in the background.

Once the index a measurement needs exists (downloaded, or built by `core.index_builds`), one low-priority thread
computes, from the vectors the index already holds:
- **retrieval** (a search model, a collection whose pictures have reference captions, e.g. Flickr8k's test split):
  text→image and image→text R@1/5/10, the standard protocol (every caption queries every image; five captions an
  image), with `evaluation.retrieval`, and the score histograms of matching and non-matching pairs;
- **zero-shot** (a categorise model, a catalogue whose `collection` it has an index of): accuracy, per-class
  precision / recall / F1 and the confusion matrix, for descriptive and bare prompts (`evaluation.classification`);
- **captioning** (a captioner): BLEU-1..4 against all references, objects named and CHAIR, on the first
  `CAPTION_SAMPLE` photos of the search default's collection (see `caption_figures`).

Each result is a JSON file in `$VLSTUDIO_EVAL_DIR` (default `$HF_HOME/vlstudio-evaluations`), in the schema of
`python -m evaluation.evaluate`'s files plus `key` (model revision, dataset revision, index build, protocol,
sample, prompts), written atomically (temporary file, fsync, rename). A result whose key matches is never
recomputed; a changed revision is. A results repo (`[evaluations] source` in the catalog, pushed with
`python -m pipelines.publish`) is read before computing. Each result records whether the model's card says it is a
look-alike with random weights (`lookalike: true`, `bench/lookalike.py`): Compare labels those rows meaningless.
"""
from __future__ import annotations

import hashlib
import json
import logging
import os
import re
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from core.catalog import Catalog

log = logging.getLogger(__name__)
EVAL_DIR_ENV = "VLSTUDIO_EVAL_DIR"
CAPTION_SAMPLE_ENV = "VLSTUDIO_EVAL_CAPTIONS"
CAPTION_SAMPLE = 100  # photos captioned per captioner (beam 3): ~2-4 min of a real BLIP on 2 vCPU
PROTOCOL = 1  # bump when a measurement changes: every stored result is recomputed once
CAPTION_DATASETS = ("flickr8k-parquet", "flickr30k-parquet", "webdataset")  # layouts whose pictures have captions
TEXT_BATCH = 64
POLL_S = 5.0
PROTOCOLS = {
    "retrieval": "every caption queries every image (5 captions an image); R@K: the caption's own image in the top K "
                 "(t2i), any of the image's captions in the top K (i2t); the index's own vectors",
    "zero-shot": "each picture of the collection whose label is a catalogue class, its index vector against the class "
                 "embeddings (mean of each class's prompt embeddings); accuracy, macro P/R/F1, confusion",
    "captioning": "beam 3 on the first N photos of the collection (as its index keeps them: JPEG, at most 320 px); BLEU-1..4 against all 5 references; objects: the "
                  "concept-table nouns the references mention (present: in any reference; expected: in 3 of 5); "
                  "CHAIR-i/s: mentioned objects no reference mentions; objects named: captions naming every expected one",
}


def default_eval_dir() -> Path:
    if value := os.environ.get(EVAL_DIR_ENV):
        return Path(value)
    from huggingface_hub import constants

    return Path(constants.HF_HOME) / "vlstudio-evaluations"


NICE_ENV = "VLSTUDIO_BACKGROUND_NICE"
BACKGROUND_NICE = 10  # a request thread (nice 0) gets ~90% of a CPU both want; 19 would starve the work on a busy host


def lower_priority() -> None:
    """Make the calling thread (and the torch/OpenMP workers it starts) yield the CPUs to visitors' requests
    (Linux: a thread is a task with its own nice value, inherited by the threads it creates)."""
    try:
        os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), int(os.environ.get(NICE_ENV, BACKGROUND_NICE)))
    except (AttributeError, OSError) as e:  # not Linux, or not allowed: run at normal priority
        log.info("background work runs at normal priority (%s)", e)


@dataclass(frozen=True)
class Job:
    model: str
    kind: str  # "retrieval", "zero-shot", "captioning"
    collection: str  # the collection measured (its index's vectors, or its photos for a captioner)
    index_model: str = ""  # whose index of `collection` is read (a captioner reads a search model's)
    catalogue: str = ""  # zero-shot only

    @property
    def slug(self) -> str:
        text = "--".join(filter(None, (self.model, self.kind, self.collection, self.catalogue)))
        return re.sub(r"[^A-Za-z0-9._-]+", "-", text).strip("-")

    def describe(self) -> str:
        what = {"retrieval": "retrieval", "zero-shot": f"zero-shot ({self.catalogue})", "captioning": "captions"}
        return f"{self.model}: {what[self.kind]} on {self.collection}"


def jobs(catalog: Catalog) -> list[Job]:
    """What the app measures: every Hub model, on every collection it serves that can measure its task."""
    out = []
    captioned = [i for i in catalog.indexes
                 if i.build and catalog.datasets[i.build.dataset].layout in CAPTION_DATASETS]
    for name, spec in catalog.models.items():
        if not spec.source.startswith("hf-hub:"):
            continue  # bundled models are measured offline (`python -m evaluation.evaluate`, README)
        if "search" in spec.tasks:
            out += [Job(name, "retrieval", i.collection, name) for i in captioned if i.model == name]
        if "categorise" in spec.tasks:
            for cat in catalog.catalogue_names():
                collection = catalog.catalogue(cat).collection
                if collection and collection in catalog.collections(name):
                    out.append(Job(name, "zero-shot", collection, name, cat))
        if "caption" in spec.tasks and captioned:
            first = catalog.defaults.get("search", {})
            photos = next((i for i in captioned if (i.model, i.collection) == (first.get("model"), first.get("collection"))),
                          captioned[0])
            out.append(Job(name, "captioning", photos.collection, photos.model))
    return out


@dataclass
class Status:
    job: Job
    state: str = "waiting"  # waiting (for its index), running, done, stored (reused, not recomputed), failed
    done: int = 0
    total: int = 0
    step: str = ""
    error: str = ""
    seconds: float = 0.0
    started: float = field(default_factory=time.monotonic)

    def message(self) -> str:
        what = self.job.describe()
        if self.state == "waiting":
            return f"Waiting for its collection's index: {what}."
        if self.state == "running":
            progress = f": {self.step} {self.done:,} / {self.total:,}" if self.total else f": {self.step}"
            return f"Measuring {what}{progress}."
        if self.state == "failed":
            return f"Measuring {what} failed: {self.error}"
        return f"Measured {what}" + (" (stored)." if self.state == "stored" else f" in {self.seconds:.0f} s.")

    def as_dict(self) -> dict:
        return {"model": self.job.model, "kind": self.job.kind, "collection": self.job.collection,
                "catalogue": self.job.catalogue, "state": self.state, "done": self.done, "total": self.total,
                "step": self.step, "error": self.error, "seconds": round(self.seconds, 1), "message": self.message()}


def write_atomic(path: Path, data: dict) -> None:
    """Write JSON so that a reader (or a crash) sees the old file or the new one, never half of one."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w") as f:
            json.dump(data, f, indent=1)
            f.write("\n")
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def read_json(path: Path) -> dict | None:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


class Evaluations:
    """The background measurements of one app (`services` gives the same cached models and indexes visitors
    use). `start()` once the server is up; `run_all()` computes them in the calling thread (offline command)."""

    def __init__(self, services, folder: Path | None = None, published: str | None = None):
        self.services = services
        self.folder = Path(folder) if folder else default_eval_dir()
        self.published = published  # a results repo (hf-hub:owner/repo) read before computing
        self._status = {job: Status(job) for job in jobs(services.catalog)}
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self._published_folder: Path | None | bool = None  # False: looked, none

    @property
    def catalog(self) -> Catalog:
        return self.services.catalog

    def path(self, job: Job) -> Path:
        return self.folder / f"{job.slug}.json"

    def start(self) -> threading.Thread | None:
        """Measure every job in a daemon thread, each as soon as its index exists (once; None if no job)."""
        with self._lock:
            if self._thread is None and self._status:
                self._thread = threading.Thread(target=self._run, name="evaluations", daemon=True)
                self._thread.start()
        return self._thread

    def running(self) -> bool:
        """Whether a measurement is still to come (waiting for its index, or running)."""
        return any(s.state in ("waiting", "running") for s in self.statuses())

    def statuses(self) -> list[Status]:
        with self._lock:
            return list(self._status.values())

    def status_lines(self) -> list[str]:
        """What Compare shows while measurements run (and what failed)."""
        return [s.message() for s in self.statuses() if s.state not in ("done", "stored")]

    def results(self) -> list[dict]:
        """Every finished result, in the schema `core.compare` reads."""
        out = []
        for s in self.statuses():
            if s.state in ("done", "stored") and (data := read_json(self.path(s.job))):
                out.append(data)
        return out

    def wait(self, timeout: float | None = None) -> bool:
        end = None if timeout is None else time.monotonic() + timeout
        while any(s.state in ("waiting", "running") for s in self.statuses()):
            if end is not None and time.monotonic() > end:
                return False
            time.sleep(0.2)
        return True

    def run_all(self, wait_for_indexes: float = 3600) -> list[Status]:
        """Compute every job in this thread (building the indexes first when needed): the offline command."""
        self._loop(deadline=time.monotonic() + wait_for_indexes)
        return self.statuses()

    # ------------------------------------------------------------------------------------------------ worker
    def _run(self) -> None:
        lower_priority()
        self._loop(deadline=None)

    def _loop(self, deadline: float | None) -> None:
        from core.services import IndexNotReady

        pending = [s for s in self.statuses() if s.state == "waiting"]
        while pending:
            for status in list(pending):
                try:
                    self._measure(status)
                except IndexNotReady:
                    continue  # its index is being built: try again later
                except Exception as e:  # noqa: BLE001 - reported in Compare; the other jobs go on
                    log.exception("measuring %s failed", status.job.describe())
                    status.state, status.error = "failed", f"{e.__class__.__name__}: {e}"
                pending.remove(status)
            if pending:
                if deadline is not None and time.monotonic() > deadline:
                    for status in pending:
                        status.state, status.error = "failed", "its index was not ready in time"
                    return
                time.sleep(POLL_S)

    def _measure(self, status: Status) -> None:
        job = status.job
        build = self.services.builds.status(self.catalog.index(job.index_model, job.collection))
        if build is not None and build.state == "failed":  # asking again would start yet another build
            raise RuntimeError(f"its index could not be built: {build.error}")
        index = self.services.index(job.index_model, job.collection)  # IndexNotReady while it is being built
        model = self.services.encoder(job.model)
        key = self._key(job, model, index)
        path = self.path(job)
        stored = read_json(path)
        if stored and _same(stored.get("key"), key):
            status.state = "stored"
            return
        if (published := self._published(job, key)) is not None:
            write_atomic(path, published)
            status.state = "stored"
            return
        status.state, status.started = "running", time.monotonic()
        log.info("measuring %s", job.describe())
        figures = MEASURES[job.kind](self, job, model, index, status)
        status.seconds = time.monotonic() - status.started
        write_atomic(path, {
            "model": job.model, "model_revision": key["model_revision"], "dataset": index.info.dataset,
            "dataset_revision": key["dataset_revision"], "config": job.kind, "split": job.collection,
            **figures, "key": key, "computed_by": "app", "protocol": PROTOCOLS[job.kind],
            "lookalike": self._lookalike(job.model), "seconds": round(status.seconds, 1),
            "date": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            "command": "computed by the app in the background (core.evaluations)",
        })
        status.state = "done"
        log.info("measured %s in %.0f s", job.describe(), status.seconds)

    def _key(self, job: Job, model, index) -> dict:
        """What a result depends on: any change recomputes it, nothing else does."""
        info = index.info
        key = {"protocol": PROTOCOL, "kind": job.kind, "model": job.model, "model_revision": model.revision,
               "dataset": info.dataset, "dataset_revision": self._dataset_revision(job),
               "index": {"model": info.model, "model_revision": info.model_revision, "count": info.count,
                         "split": info.split, "build_date": info.build_date}}
        if job.kind == "zero-shot":
            cat = self.catalog.catalogue(job.catalogue)
            prompts = json.dumps([cat.prompts("descriptive"), cat.prompts("bare"), cat.field], sort_keys=True)
            key["prompts"] = hashlib.sha256(prompts.encode()).hexdigest()[:16]
        if job.kind == "captioning":
            key["sample"] = caption_sample()
        return key

    def _dataset_revision(self, job: Job) -> str | None:
        """The dataset's current commit on the Hub (one metadata call, no download), else the revision its source
        names (a folder's: None; the Hub unreachable: see `_same`)."""
        spec = self.catalog.index(job.index_model, job.collection)
        if spec.build is None:
            return self.services.index(job.index_model, job.collection).info.dataset_revision
        from core.sources import HUB_TIMEOUT_S, parse_source

        src = parse_source(self.catalog.datasets[spec.build.dataset].source)
        if src.kind != "hub":
            return src.revision
        try:
            from huggingface_hub import HfApi

            return HfApi().dataset_info(src.repo_id, revision=src.revision, timeout=HUB_TIMEOUT_S).sha
        except Exception as e:  # noqa: BLE001 - unreachable: the stored result stands (see `_same`)
            log.info("cannot ask the Hub for %s's revision (%s)", src.repo_id, e)
            return None

    def _published(self, job: Job, key: dict) -> dict | None:
        """The result from the results repo, when it has one with the same key."""
        if not self.published:
            return None
        if self._published_folder is None:
            from core.sources import SourceError, resolve

            try:
                self._published_folder = resolve(self.published, repo_type="dataset")
            except SourceError as e:
                log.info("no published evaluations at %s (%s): computing them here", self.published, e)
                self._published_folder = False
        if not self._published_folder:
            return None
        data = read_json(Path(self._published_folder) / self.path(job).name)
        return data if data and _same(data.get("key"), key) else None

    def _lookalike(self, model: str) -> bool:
        return model_card_lookalike(self.catalog.model(model).source)


def _same(stored: dict | None, key: dict) -> bool:
    """Whether a stored result answers `key`; a dataset revision the Hub could not be asked for (None) matches the
    stored one, so a restart without the Hub recomputes nothing."""
    if not stored:
        return False
    if key.get("dataset_revision") is None:
        key = {**key, "dataset_revision": stored.get("dataset_revision")}
    return stored == key


def model_card_lookalike(source: str) -> bool:
    """Whether the model card (README.md) of a source says `lookalike: true` in its front matter (the look-alike
    repos of `bench/lookalike.py` do; real repos do not). No card, or no answer: False."""
    from core.sources import parse_source

    src = parse_source(source)
    try:
        if src.kind == "local":
            text = (src.path / "README.md").read_text()
        else:
            from huggingface_hub import hf_hub_download

            text = Path(hf_hub_download(src.repo_id, "README.md", revision=src.revision)).read_text()
    except Exception:  # noqa: BLE001 - no card: nothing says it is a look-alike
        return False
    front = re.match(r"---\n(.*?)\n---", text, re.S)
    return bool(front and re.search(r"^lookalike:\s*true\s*$", front.group(1), re.M | re.I))


def caption_sample() -> int:
    return int(os.environ.get(CAPTION_SAMPLE_ENV, CAPTION_SAMPLE))


def index_vectors(index) -> np.ndarray:
    """(N, D) the vectors an index holds, in row order (exact for Flat indexes; IVF needs its direct map)."""
    faiss_index = index.index
    try:
        return faiss_index.reconstruct_n(0, faiss_index.ntotal)
    except RuntimeError:
        import faiss

        ivf = faiss.extract_index_ivf(faiss_index)
        ivf.make_direct_map()
        return faiss_index.reconstruct_n(0, faiss_index.ntotal)


def _encode_texts(model, texts: list[str], status: Status, step: str) -> np.ndarray:
    status.step, status.done, status.total = step, 0, len(texts)
    parts = []
    for start in range(0, len(texts), TEXT_BATCH):
        parts.append(model.encode_text(texts[start : start + TEXT_BATCH]))
        status.done = min(len(texts), start + TEXT_BATCH)
    return np.concatenate(parts) if parts else np.zeros((0, model.dim), np.float32)


def retrieval_figures(evaluations: Evaluations, job: Job, model, index, status: Status) -> dict:
    from evaluation.evaluate import score_distribution
    from evaluation.retrieval import recall_at_k

    xb = index_vectors(index)
    captions = [list(c) for c in index.meta["captions"]]
    owner = np.repeat(np.arange(len(captions)), [len(c) for c in captions])
    text_emb = _encode_texts(model, [c for caps in captions for c in caps], status, "captions embedded")
    return {"n_images": len(xb), "n_captions": len(owner), "metrics": recall_at_k(text_emb, xb, owner),
            "scores": score_distribution(text_emb, xb, owner)}


def zero_shot_figures(evaluations: Evaluations, job: Job, model, index, status: Status) -> dict:
    from evaluation.classification import classification_metrics
    from models.zero_shot import build_zero_shot_classifier

    catalogue = evaluations.catalog.catalogue(job.catalogue)
    labels = _labels(evaluations, job, index, catalogue.field)
    classes = catalogue.classes
    keep = np.array([label in classes for label in labels], dtype=bool)
    xb = index_vectors(index)[keep]
    y = np.array([classes.index(label) for label, k in zip(labels, keep) if k])
    out = {"n_images": int(keep.sum()), "n_left_out": int((~keep).sum()), "classes": classes,
           "catalogue": job.catalogue, "styles": {}}
    for i, style in enumerate(("descriptive", "bare")):
        status.step, status.done, status.total = "prompt styles", i, 2
        prompts = catalogue.prompts(style)
        class_emb = build_zero_shot_classifier(model, prompts)
        sims = xb @ class_emb.T  # (N, C) cosine similarities
        pred = sims.argmax(axis=1)
        out["styles"][style] = {
            **classification_metrics(y, pred, len(classes)), "prompts": prompts,
            "per_class": _per_class(y, pred, classes),
            "mean_similarity_per_class": {c: float(sims[y == j, j].mean()) for j, c in enumerate(classes) if (y == j).any()},
        }
    status.done = 2
    return out


def _per_class(y: np.ndarray, pred: np.ndarray, classes: list[str]) -> dict:
    out = {}
    for j, c in enumerate(classes):
        tp, predicted, actual = int(((pred == j) & (y == j)).sum()), int((pred == j).sum()), int((y == j).sum())
        p, r = (100 * tp / predicted if predicted else 0.0), (100 * tp / actual if actual else 0.0)
        out[c] = {"precision": p, "recall": r, "f1": 2 * p * r / (p + r) if p + r else 0.0, "support": actual}
    return out


def _labels(evaluations: Evaluations, job: Job, index, field_name: str) -> list[str]:
    """Each index row's label: the corpus `category`, or another column of the collection's dataset by id."""
    meta = index.meta
    if field_name == "category":
        return [str(c) for c in meta["category"]]
    from core.layouts import column_by_id

    spec = evaluations.catalog.index(job.index_model, job.collection)
    if spec.build is None:
        raise ValueError(f"the catalogue reads {field_name!r}, which only a collection built from its dataset has")
    by_id = column_by_id(evaluations.catalog.datasets[spec.build.dataset], spec.build.split, field_name)
    return [str(by_id.get(str(i), "")) for i in meta["id"]]


def caption_figures(evaluations: Evaluations, job: Job, model, index, status: Status) -> dict:
    """BLEU against the references; objects are the concept table's nouns (`evaluation.hallucination.Lexicon`)
    the references mention: CHAIR counts a mentioned object that no reference mentions, objects named is the
    share of captions naming every object at least 3 of the 5 references mention."""
    import io

    from PIL import Image

    from evaluation.captioning import corpus_bleu, has_repeated_phrase
    from evaluation.hallucination import Lexicon, chair
    from models.captioner import tokenize

    n = min(caption_sample(), len(index.meta))
    rows = index.meta.iloc[:n]
    lexicon = Lexicon.from_concept_table()
    hyps, refs, present, expected = [], [], [], []
    status.step, status.done, status.total = "photos captioned", 0, n
    for i, (picture, captions) in enumerate(zip(rows["image"], rows["captions"])):
        result = model.caption(Image.open(io.BytesIO(picture)).convert("RGB"), beam_size=3)
        hyps.append(result.tokens)
        refs.append([tokenize(c) for c in captions])
        counts: dict[str, int] = {}
        for ref in refs[-1]:
            for concept in {c for m in lexicon.mentions(ref) for c in m.concepts}:
                counts[concept] = counts.get(concept, 0) + 1
        present.append(set(counts))
        expected.append({c for c, k in counts.items() if k >= 3})
        status.done = i + 1
    named = [all(any(c in m.concepts for m in lexicon.mentions(h)) for c in exp) for h, exp in zip(hyps, expected)]
    figures = {**corpus_bleu(hyps, refs), **chair(hyps, present, lexicon),
               "objects_named": 100 * float(np.mean(named)) if named else 0.0,
               "repeated_phrase_rate": 100 * float(np.mean([has_repeated_phrase(h) for h in hyps])) if hyps else 0.0,
               "mean_length": float(np.mean([len(h) for h in hyps])) if hyps else 0.0}
    return {"n_images": n, "captioning": {"beam 3": figures},
            "examples": {"beam 3": {str(i): " ".join(h) for i, h in zip(rows["id"][:10], hyps[:10])}}}


MEASURES = {"retrieval": retrieval_figures, "zero-shot": zero_shot_figures, "captioning": caption_figures}
