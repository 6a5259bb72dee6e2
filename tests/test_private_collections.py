"""Your pictures (core.private and the Search tab's API): private per session, bounded, bad input skipped with
a reason, searchable like any collection. Tests never depend on the bundled models' quality: a collection is
searched with one of its own pictures, which must come first."""
import io
import struct
import threading
import zipfile
import zlib
from pathlib import Path

import numpy as np
import pytest
from gradio_client import Client, handle_file
from gradio_client.exceptions import AppError
from PIL import Image, ImageDraw

from core import private
from core.inputs import InputError


# ------------------------------------------------------------------------------------------------ pictures
def picture(seed: int, size=(160, 120)) -> Image.Image:
    """A distinct picture: a coloured background with a few seeded shapes."""
    rng = np.random.default_rng(seed)
    img = Image.new("RGB", size, tuple(int(c) for c in rng.integers(0, 255, 3)))
    draw = ImageDraw.Draw(img)
    w, h = size
    for _ in range(4):
        x, y, s = int(rng.integers(0, w - 20)), int(rng.integers(0, h - 20)), int(rng.integers(15, max(20, w // 2)))
        fill = tuple(int(c) for c in rng.integers(0, 255, 3))
        (draw.ellipse if rng.random() < 0.5 else draw.rectangle)([x, y, x + s, y + s], fill=fill)
    return img


def png_bytes(img: Image.Image) -> bytes:
    buf = io.BytesIO()
    img.save(buf, format="PNG")
    return buf.getvalue()


def bomb_png(width: int, height: int) -> bytes:
    """A valid PNG header claiming width × height pixels, with a tiny body: what a decompression bomb looks like
    until it is decoded."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)  # 8-bit grayscale
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\x00" * 64)) + chunk(b"IEND", b"")


def write(folder: Path, name: str, data: bytes) -> Path:
    path = folder / name
    path.write_bytes(data)
    return path


def bad_zip(folder: Path, good: dict[str, bytes]) -> Path:
    """A zip holding `good` pictures and, beside them, every kind of member that must be skipped."""
    path = folder / "holiday.zip"
    with zipfile.ZipFile(path, "w") as z:
        for name, data in good.items():
            z.writestr(name, data)
        z.writestr("../evil.png", png_bytes(picture(900)))
        z.writestr("/abs.png", png_bytes(picture(901)))
        z.writestr("readme.txt", b"my holiday pictures")
        z.writestr("inner.zip", b"PK\x05\x06" + b"\x00" * 18)
        z.writestr("__MACOSX/._beach.png", b"\x00\x05\x16\x07")
        link = zipfile.ZipInfo("link.png")
        link.external_attr = 0o120777 << 16  # a symbolic link to /etc/passwd
        z.writestr(link, "/etc/passwd")
    return path


# Every kind of bad input and the words its reason must contain.
EXPECTED_REASONS = {
    "notes.png": "not an image we can read",
    "cut.png": "damaged or cut short",
    "bomb.png": "too many pixels",  # 400 megapixels claimed: Pillow's own guard
    "big.png": "above our limit of 40 megapixels",  # 64 megapixels claimed: our header check
    "empty.jpg": "empty",
    "holiday.zip/../evil.png": "outside the zip's folder",
    "holiday.zip//abs.png": "outside the zip's folder",
    "holiday.zip/readme.txt": "not a picture (.txt)",
    "holiday.zip/inner.zip": "a zip inside the zip",
    "holiday.zip/__MACOSX/._beach.png": "macOS metadata",
    "holiday.zip/link.png": "a link",
}


def bad_and_good_files(folder: Path) -> tuple[list[Path], dict[str, Image.Image]]:
    """Loose files and one zip: six good pictures (three loose, three in the zip) and every kind of bad input."""
    good = {f"loose-{i}.png": picture(i) for i in range(3)}
    zipped = {f"trip/zipped-{i}.png": picture(10 + i) for i in range(3)}
    valid = png_bytes(picture(99))
    files = [write(folder, name, png_bytes(img)) for name, img in good.items()]
    files += [write(folder, "notes.png", b"these are my notes, not a picture"),
              write(folder, "cut.png", valid[: len(valid) // 2]),
              write(folder, "bomb.png", bomb_png(20_000, 20_000)),
              write(folder, "big.png", bomb_png(8_000, 8_000)),
              write(folder, "empty.jpg", b""),
              bad_zip(folder, {name: png_bytes(img) for name, img in zipped.items()})]
    return files, {**good, **zipped}


def check_reasons(skipped: list[tuple[str, str]]) -> None:
    reasons = dict(skipped)
    assert set(reasons) == set(EXPECTED_REASONS), reasons
    for name, words in EXPECTED_REASONS.items():
        assert words in reasons[name], (name, reasons[name])


# ------------------------------------------------------------------------------------------------ core
@pytest.fixture(scope="module")
def encoder():
    from core.catalog import load_catalog
    from core.services import Services

    services = Services(load_catalog())
    return services.encoder(services.catalog.search_models()[0])


def test_bad_input_is_skipped_with_its_reason_and_the_rest_is_searchable(encoder, tmp_path):
    from core.search import search_image

    files, good = bad_and_good_files(tmp_path)
    before = {p for p in Path(tmp_path.anchor).glob("*")} | set(tmp_path.parent.rglob("*"))
    reg = private.PrivateCollections()
    mine = reg.build("session-a", [str(f) for f in files], encoder, encoder.name, [tmp_path])
    check_reasons([(s.file, s.reason) for s in mine.skipped])
    assert sorted(mine.index.meta["id"]) == sorted(good)
    for name, img in good.items():  # each good picture finds itself first
        hit = search_image(encoder, mine.index, img, 1).hits[0]
        assert hit.id == name and hit.score > 0.999
    after = {p for p in Path(tmp_path.anchor).glob("*")} | set(tmp_path.parent.rglob("*"))
    assert after == before  # nothing was unpacked or written anywhere: no evil.png, no abs.png
    assert mine.nbytes > 0 and mine.count == 6


def test_limits_are_checked_before_reading(tmp_path, monkeypatch):
    monkeypatch.setattr(private, "MAX_PICTURES", 3)
    monkeypatch.setattr(private, "MAX_ZIP_BYTES", 1000)
    files = [write(tmp_path, f"p{i}.png", png_bytes(picture(i))) for i in range(5)]
    big_zip = tmp_path / "big.zip"
    with zipfile.ZipFile(big_zip, "w", compression=zipfile.ZIP_STORED) as z:
        z.writestr("a.png", png_bytes(picture(7, (300, 300))))
    candidates, skipped = private.gather([str(f) for f in files] + [str(big_zip)], [tmp_path])
    assert [c.name for c in candidates] == ["p0.png", "p1.png", "p2.png"]
    reasons = {s.file: s.reason for s in skipped}
    assert "limit of 3 pictures" in reasons["p3.png"] and "limit of 3 pictures" in reasons["p4.png"]
    assert "above the limit of 0 MB" in reasons["big.zip"] or "nothing in it was read" in reasons["big.zip"]
    # a path outside the upload folders is never read, whatever it names
    _, skipped = private.gather(["/etc/passwd", {"path": "/etc/hostname", "orig_name": "x.png"}], [tmp_path])
    assert [s.reason for s in skipped] == ["This file cannot be read; please upload it."] * 2


def test_a_zip_with_too_many_entries_is_refused_from_its_end_record(tmp_path, monkeypatch):
    monkeypatch.setattr(private, "MAX_ZIP_ENTRIES", 10)
    path = tmp_path / "many.zip"
    with zipfile.ZipFile(path, "w") as z:
        for i in range(11):
            z.writestr(f"{i}.png", b"x")
    candidates, skipped = private.gather([str(path)], [tmp_path])
    assert not candidates and "holds 11 entries" in skipped[0].reason


def test_a_zip_bomb_stops_at_the_unpacked_budget(tmp_path, monkeypatch):
    monkeypatch.setattr(private, "MAX_ZIP_UNPACKED_BYTES", 3 * 1024 * 1024)
    path = tmp_path / "bomb.zip"
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED) as z:
        for i in range(3):
            z.writestr(f"{i}.png", b"\x00" * (2 * 1024 * 1024))  # 2 MB of zeros: a few kB compressed
    assert path.stat().st_size < 50_000
    candidates, _ = private.gather([str(path)], [tmp_path])
    reads = []
    for c in candidates:
        try:
            reads.append(len(c.read()))
        except InputError as e:
            reads.append(str(e))
    assert reads[0] == 2 * 1024 * 1024 and "unpacks to more than 3 MB" in reads[1]


def test_nothing_indexed_lists_every_reason(encoder, tmp_path):
    files = [write(tmp_path, "a.png", b"not a picture"), write(tmp_path, "b.gif", b"GIF89a")]
    with pytest.raises(private.NothingIndexed) as e:
        private.PrivateCollections().build("s", [str(f) for f in files], encoder, encoder.name, [tmp_path])
    assert [s.file for s in e.value.skipped] == ["a.png", "b.gif"] and "None of your 2 files" in str(e.value)


class SlowEncoder:
    """The real encoder, whose first image batch waits for `go`: a build that is still running, on demand."""

    def __init__(self, encoder):
        self.inner, self.go, self.started = encoder, threading.Event(), threading.Event()
        self.name, self.dim, self.revision = encoder.name, encoder.dim, encoder.revision

    def encode_image(self, images, batch_size=64):
        self.started.set()
        assert self.go.wait(30)
        return self.inner.encode_image(images, batch_size)


def test_one_build_per_session_and_a_queued_build_says_so(encoder, tmp_path):
    files = [str(write(tmp_path, f"p{i}.png", png_bytes(picture(i)))) for i in range(3)]
    reg, slow = private.PrivateCollections(parallel_builds=1), SlowEncoder(encoder)
    first = threading.Thread(target=reg.build, args=("a", files, slow, encoder.name, [tmp_path]))
    first.start()
    assert slow.started.wait(30)
    with pytest.raises(InputError, match="already being indexed"):  # the same session again
        reg.build("a", files, encoder, encoder.name, [tmp_path])
    told, results = [], []
    second = threading.Thread(target=lambda: results.append(
        reg.build("b", files, encoder, encoder.name, [tmp_path], waiting=told.append)))
    second.start()
    for _ in range(100):  # another session waits for the first build, and is told how many builds are ahead
        if told:
            break
        threading.Event().wait(0.05)
    assert told == [1] and not results
    slow.go.set()
    first.join(30), second.join(30)
    assert results[0].count == 3 and reg.of_session("a").count == 3


def test_collections_are_private_and_freed(encoder, tmp_path):
    files = [str(write(tmp_path, f"p{i}.png", png_bytes(picture(i)))) for i in range(2)]
    reg = private.PrivateCollections(idle_s=60)
    mine = reg.build("a", files, encoder, encoder.name, [tmp_path])
    assert reg.get("a", mine.handle) is mine
    for session, handle in (("b", mine.handle), ("a", mine.handle + "x"), (None, mine.handle), ("a", "yours:guess")):
        with pytest.raises(InputError, match="not available in this session"):
            reg.get(session, handle)
    folder = reg.folder("a")
    (folder / "search-results.json").write_text("{}")
    assert reg.forget("a") and not folder.exists() and reg.of_session("a") is None  # the session ended
    with pytest.raises(InputError, match="not available"):
        reg.get("a", mine.handle)
    again = reg.build("c", files, encoder, encoder.name, [tmp_path])
    assert reg.sweep(now=__import__("time").monotonic() + 30) == 0 and reg.get("c", again.handle)
    assert reg.sweep(now=__import__("time").monotonic() + 61) == 1 and reg.of_session("c") is None  # idle


def test_session_limit(encoder, tmp_path):
    files = [str(write(tmp_path, "p.png", png_bytes(picture(1))))]
    reg = private.PrivateCollections(max_sessions=1)
    reg.build("a", files, encoder, encoder.name, [tmp_path])
    reg.build("a", files, encoder, encoder.name, [tmp_path])  # the same session may rebuild
    with pytest.raises(InputError, match="as many private collections as it can"):
        reg.build("b", files, encoder, encoder.name, [tmp_path])


# ------------------------------------------------------------------------------------------------ the API
def _client(app_url) -> Client:
    return Client(app_url, verbose=False)


def _build(client: Client, files, model: str = "") -> dict:
    return client.predict([handle_file(str(f)) for f in files], model, api_name="/build_collection")


def _search_image(client: Client, path, collection: str, k: int = 3, model: str = "") -> list[dict]:
    return client.predict("", handle_file(str(path)), k, model, collection, api_name="/search")


@pytest.mark.slow
def test_api_bad_input_reasons_and_good_files_searchable(app_url, tmp_path):
    client = _client(app_url)
    files, good = bad_and_good_files(tmp_path)
    out = _build(client, files)
    assert out["pictures"] == 6 and out["collection"].startswith("yours:") and out["seconds"] > 0
    check_reasons([(s["file"], s["reason"]) for s in out["skipped"]])
    query = write(tmp_path, "query.png", png_bytes(good["trip/zipped-1.png"]))
    hits = _search_image(client, query, out["collection"])
    assert hits[0]["file_name"] == "trip/zipped-1.png" == hits[0]["id"] and hits[0]["score"] > 0.999
    texts = client.predict("a picture", None, 50, "", out["collection"], api_name="/search")
    assert sorted(h["file_name"] for h in texts) == sorted(good)  # searchable by text too: all six, no others
    with pytest.raises(AppError, match="indexed with"):
        other = next(m for m in ("demo-clip", "dual-minilm-cnn") if m != out["model"])
        _search_image(client, query, out["collection"], model=other)
    bundled = client.predict("a dog", None, 2, "", "", api_name="/search")
    assert "file_name" not in bundled[0]  # the bundled collections' results keep their shape
    client.close()


@pytest.mark.slow
def test_two_concurrent_sessions_cannot_see_each_others_collections(app_url, tmp_path):
    a, b = _client(app_url), _client(app_url)
    sets = {"a": {f"a-{i}.png": picture(100 + i) for i in range(4)}, "b": {f"b-{i}.png": picture(200 + i) for i in range(4)}}
    folders = {n: tmp_path / n for n in sets}
    paths = {}
    for n, pics in sets.items():
        folders[n].mkdir()
        paths[n] = [write(folders[n], name, png_bytes(img)) for name, img in pics.items()]
    jobs = {n: c.submit([handle_file(str(p)) for p in paths[n]], "", api_name="/build_collection")
            for n, c in (("a", a), ("b", b))}
    built = {n: job.result(timeout=600) for n, job in jobs.items()}  # both built at the same time
    assert built["a"]["collection"] != built["b"]["collection"]
    for me, other, client in (("a", "b", a), ("b", "a", b)):
        hits = client.predict("a picture", None, 50, "", built[me]["collection"], api_name="/search")
        assert {h["file_name"] for h in hits} == set(sets[me])  # only my pictures
        assert _search_image(client, paths[me][2], built[me]["collection"])[0]["file_name"] == paths[me][2].name
        with pytest.raises(AppError, match="not available in this session"):  # the other's handle is useless here
            client.predict("a picture", None, 5, "", built[other]["collection"], api_name="/search")
    assert b.predict(api_name="/forget_collection") is True
    with pytest.raises(AppError, match="not available in this session"):
        b.predict("a picture", None, 5, "", built["b"]["collection"], api_name="/search")
    assert a.predict("a picture", None, 5, "", built["a"]["collection"], api_name="/search")  # a's is untouched
    a.close(), b.close()


@pytest.mark.slow
def test_a_collection_is_freed_when_its_client_session_ends(app_url, tmp_path):
    """Gradio calls the unload handler when a session's heartbeat stops (the page or client closed)."""
    import time

    client = _client(app_url)
    out = _build(client, [write(tmp_path, "p.png", png_bytes(picture(5)))])
    same = _client(app_url)
    same.session_hash = client.session_hash  # the same session seen from a second connection
    assert same.predict("a picture", None, 1, "", out["collection"], api_name="/search")
    client.close()
    deadline = time.monotonic() + 60
    while True:
        try:
            same.predict("a picture", None, 1, "", out["collection"], api_name="/search")
        except AppError as e:
            assert "not available in this session" in str(e)
            break
        assert time.monotonic() < deadline, "the collection outlived its session"
        time.sleep(1)
    same.close()


@pytest.mark.slow
def test_api_build_refuses_nothing_and_unreadable(app_url, tmp_path):
    client = _client(app_url)
    with pytest.raises(AppError, match="Upload some pictures"):
        client.predict([], "", api_name="/build_collection")
    with pytest.raises(AppError, match="None of your 1 files could be indexed.*not an image"):
        _build(client, [write(tmp_path, "notes.png", b"not a picture")])
    with pytest.raises(AppError, match="Unknown model"):
        _build(client, [write(tmp_path, "p.png", png_bytes(picture(1)))], model="no-such-model")
    client.close()


def test_results_json_for_bundled_and_private_collections(encoder, tmp_path):
    import json

    from core.catalog import load_catalog
    from core.services import Services
    from tabs.search import KEEP_DOWNLOADS, result_rows, results_json, search_in

    services = Services(load_catalog())
    result, model, mine = search_in(services, "a dog", None, 4, "", "")
    assert mine is None
    rows = result_rows(result, model, mine)
    assert [r["rank"] for r in rows] == [1, 2, 3, 4] and all(r["file_name"] is None and r["model"] == model for r in rows)
    reg = private.PrivateCollections()
    files = [str(write(tmp_path, f"p{i}.png", png_bytes(picture(i)))) for i in range(3)]
    handle = reg.build("s", files, services.encoder(model), model, [tmp_path]).handle
    result, used, mine = search_in(services, "a dog", None, 3, "", handle, reg, "s")
    assert used == model and mine.handle == handle
    folder = reg.folder("s")
    for _ in range(KEEP_DOWNLOADS + 2):
        path = results_json(folder, "a dog", used, mine.label(), result_rows(result, used, mine))
    saved = json.loads(path.read_text())
    assert {r["file_name"] for r in saved["results"]} == {"p0.png", "p1.png", "p2.png"}
    assert saved["model"] == model and saved["collection"] == "your pictures (3 pictures)"
    assert len(list(folder.iterdir())) == KEEP_DOWNLOADS + 1  # older downloads are pruned
    with pytest.raises(InputError, match="not available in this session"):
        search_in(services, "a dog", None, 3, "", handle, reg, "another session")
