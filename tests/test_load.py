"""Load and memory: many concurrent API clients, and model switching under a bounded cache."""
import json
import threading
import time
from pathlib import Path

import numpy as np
import pytest

ARTIFACTS = Path(__file__).resolve().parent.parent / "test-artifacts"
CLIENTS, SECONDS = 16, 30


@pytest.mark.slow
def test_sixteen_clients_for_thirty_seconds(app_url):
    from gradio_client import Client

    queries = ["a dog on a blue background", "a small red car", "two cats", "a tree at the top left", "a watch"]
    clients = [Client(app_url, verbose=False) for _ in range(CLIENTS)]
    latencies: list[float] = []
    errors: list[str] = []
    lock = threading.Lock()
    stop = time.perf_counter() + SECONDS

    def worker(i: int, client) -> None:
        n = 0
        while time.perf_counter() < stop:
            t0 = time.perf_counter()
            try:
                hits = client.predict(queries[(i + n) % len(queries)], None, 5, "", "", api_name="/search")
                assert len(hits) == 5
                with lock:
                    latencies.append(time.perf_counter() - t0)
            except Exception as e:  # noqa: BLE001 - every failure counts as an error
                with lock:
                    errors.append(repr(e)[:200])
            n += 1

    threads = [threading.Thread(target=worker, args=(i, c)) for i, c in enumerate(clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=SECONDS + 60)
    ms = np.array(latencies) * 1000
    report = {"clients": CLIENTS, "seconds": SECONDS, "requests": len(latencies) + len(errors), "errors": len(errors),
              "p50_ms": float(np.percentile(ms, 50)) if len(ms) else None,
              "p95_ms": float(np.percentile(ms, 95)) if len(ms) else None, "first_errors": errors[:5]}
    ARTIFACTS.mkdir(exist_ok=True)
    (ARTIFACTS / "load.json").write_text(json.dumps(report, indent=2))
    assert not errors, report
    assert len(latencies) >= CLIENTS * 5, report


def _rss_mb() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


@pytest.mark.slow
def test_memory_stays_bounded_while_switching_models():
    import gc

    from PIL import Image

    from core.catalog import load_catalog
    from core.services import Services

    services = Services(load_catalog(), max_models=2)
    names = list(services.catalog.models)
    image = Image.new("RGB", (64, 64), (200, 40, 40))

    def use(name: str) -> None:
        model = services.model(name)
        if hasattr(model, "encode_image"):
            model.encode_image([image])
        elif hasattr(model, "caption"):
            model.caption(image, beam_size=1)
        else:
            model.predict_proba([image])

    for name in names:  # warm: every model loaded once
        use(name)
    gc.collect()
    after_one_cycle = _rss_mb()
    for _ in range(4):
        for name in names:
            use(name)
            assert len(services.loaded_models()) <= 2
    gc.collect()
    after_five = _rss_mb()
    report = {"models": names, "cache_size": 2, "rss_after_1_cycle_mb": after_one_cycle, "rss_after_5_cycles_mb": after_five}
    ARTIFACTS.mkdir(exist_ok=True)
    (ARTIFACTS / "memory.json").write_text(json.dumps(report, indent=2))
    assert after_five - after_one_cycle < 150, report  # no model is kept beyond the cache's bound
