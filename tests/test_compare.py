"""The comparison data: read from the evaluation files, never typed in; score distributions; cost."""
import json
from pathlib import Path

import numpy as np
import pytest
import torch

from core.catalog import load_catalog
from core.compare import load_evaluations, long_table, wide_table
from evaluation.evaluate import count_parameters, score_distribution
from tabs.compare import confusion_figure, cost_figure, score_figure

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def evaluations():
    return load_evaluations(load_catalog())


def test_every_bundled_model_has_evaluations(evaluations):
    models = {ev["model"] for ev in evaluations}
    assert {"demo-clip", "dual-minilm-cnn", "cnn-baseline"} <= models


def test_table_values_are_the_files_values(evaluations):
    rows = long_table(evaluations)
    assert rows and all(set(r) == {"model", "dataset", "split", "metric", "value", "command", "lookalike", "measured"} for r in rows)
    for ev in evaluations:
        stored = json.loads(Path(ev["file"]).read_text())
        split = f"{stored['config']}/{stored['split']}"
        mine = {r["metric"]: r["value"] for r in rows
                if r["model"] == ev["model"] and r["split"] == split and r["dataset"] == stored["dataset"]}
        for key, value in stored.get("metrics", {}).items():
            assert mine[key] == pytest.approx(value, abs=1e-4)
        for style, s in stored.get("styles", {}).items():
            assert mine[f"{style} accuracy"] == pytest.approx(s["accuracy"], abs=1e-4)
            assert mine[f"{style} macro_f1"] == pytest.approx(s["macro_f1"], abs=1e-4)
        for setting, c in stored.get("captioning", {}).items():
            assert mine[f"{setting} BLEU-4"] == pytest.approx(c["BLEU-4"], abs=1e-4)
            if "CHAIR_i" in c:
                assert mine[f"{setting} CHAIR_i"] == pytest.approx(c["CHAIR_i"], abs=1e-4)
                assert mine[f"{setting} position_accuracy"] == pytest.approx(c["position_accuracy"], abs=1e-4)
        for label, z in stored.get("concepts", {}).get("zero_shot", {}).items():
            assert mine[f"{label} zero-shot top1"] == pytest.approx(z["top1"], abs=1e-4)
        assert all(r["command"].startswith(("python -m evaluation.evaluate", "python -m evaluation.paraphrases"))
                   for r in rows if r["model"] == ev["model"])


def test_wide_table_has_one_row_per_file(evaluations):
    headers, rows = wide_table(evaluations)
    assert len(rows) == len(evaluations) and all(len(r) == len(headers) for r in rows)


def test_unreadable_evaluation_file_is_skipped(tmp_path):
    folder = tmp_path / "m"
    (folder / "eval").mkdir(parents=True)
    (folder / "eval" / "broken.json").write_text("{not json")
    (folder / "eval" / "ok.json").write_text(json.dumps({"config": "scenes", "split": "test", "metrics": {"t2i_R@1": 50.0}}))
    (tmp_path / "c.toml").write_text(f'[models.m]\nfamily = "open_clip"\nsource = "{folder}"\n')
    evs = load_evaluations(load_catalog(tmp_path / "c.toml"))
    assert [ev["model"] for ev in evs] == ["m"]
    assert long_table(evs)[0]["value"] == 50.0


def test_score_distribution_counts_every_pair():
    rng = np.random.default_rng(0)
    img = rng.normal(size=(6, 8)).astype(np.float32)
    img /= np.linalg.norm(img, axis=1, keepdims=True)
    owner = np.repeat(np.arange(6), 2)
    txt = img[owner] + 0.1 * rng.normal(size=(12, 8)).astype(np.float32)
    txt /= np.linalg.norm(txt, axis=1, keepdims=True)
    s = score_distribution(txt, img, owner)
    assert sum(s["matching"]) == 12 and sum(s["non_matching"]) == 12 * 5
    sims = txt @ img.T
    assert s["matching_mean"] == pytest.approx(float(sims[np.arange(12), owner].mean()), abs=1e-6)
    assert s["gap"] > 0.5


def test_count_parameters_counts_shared_modules_once():
    class Holder:
        pass

    lin = torch.nn.Linear(3, 4)
    h = Holder()
    h.a, h.b, h.c = lin, lin, torch.nn.Linear(2, 1)
    assert count_parameters(h) == 16 + 3


def test_figures_render(evaluations):
    for fig in (confusion_figure(evaluations, "bare"), score_figure(evaluations), cost_figure(evaluations),
                confusion_figure([], "bare"), score_figure([]), cost_figure([])):
        assert fig.axes
