"""Your pictures: a private collection a visitor uploads, indexed with the selected model, searched like any other.

No gradio here: the Search tab and its API call these functions with the visitor's session id.

- **What is read.** Up to `MAX_PICTURES` pictures, given as loose files or inside one zip of at most
  `MAX_ZIP_BYTES`. Every limit is checked before a single pixel is decoded: the count and the bytes of each file
  (from the file system or the zip's directory, then enforced while reading), and the pixels of each picture (from
  its header, `core.inputs.check_image_size`: a decompression bomb costs nothing). A file that fails a check is
  skipped with a reason the visitor reads (`Skipped`); the rest are indexed.
- **Zips** are read in memory, never unpacked to disk: a member whose path would lead outside the zip's folder
  (`../x.png`, `/etc/x.png`, `C:\\x.png`), a link, an encrypted member, a file that is not a picture and macOS's
  `__MACOSX` copies are each skipped with their reason. Nothing of a collection is written to disk.
- **Embedding and search** use the code every bundled collection uses: `core.indexing.embed_batch` (the
  encoder's own preprocessing, batched), `index.build_index` / `choose_factory` and `index.LoadedIndex`, so
  `core.search.search_text` / `search_image` serve it unchanged. A hit's id and caption are the file's name.
- **Private and bounded** (`PrivateCollections`): a collection belongs to one session id and is found only with
  that session id *and* its handle (a random token), so neither guessing a handle nor knowing another session's id
  is enough. One collection per session (a new build replaces it), one build per session at a time, at most
  `parallel_builds` builds at once over all sessions (others wait, and are told how many builds are ahead), at
  most `max_sessions` collections held at once. A collection is freed when its session ends (`forget`, called on
  Gradio's unload) or after `idle_s` seconds without use; the session's folder (results downloads) goes with it.
"""
from __future__ import annotations

import io
import logging
import re
import secrets
import shutil
import stat
import tempfile
import threading
import time
import zipfile
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath

import numpy as np
import pandas as pd
from PIL import Image

from core.inputs import FORMATS_TEXT, IMAGE_FORMATS, InputError, check_image_size, image_to_png_bytes, load_image

log = logging.getLogger(__name__)

MAX_PICTURES = 200
MAX_PICTURE_BYTES = 20 * 1024 * 1024  # per picture, loose or in a zip (the app's upload limit)
MAX_ZIP_BYTES = 50 * 1024 * 1024
MAX_ZIP_ENTRIES = 2_000  # a zip's directory is read whole by zipfile: count its entries first
MAX_ZIP_UNPACKED_BYTES = 400 * 1024 * 1024  # all pictures of a zip together, as read (a zip bomb stops here)
EMBED_MAX_SIDE = 1024  # larger pictures are shrunk to this long side before embedding (models see 64-384 px)
THUMBNAIL_PX = 320  # what the gallery shows, as the bundled photo collections keep it
BATCH = 16  # pictures decoded and embedded at a time: bounds the memory of a build
IDLE_S = 30 * 60
MAX_SESSIONS = 32  # collections held at once, over all sessions (~6 MB each for 200 pictures)
HANDLE_PREFIX = "yours:"
PICTURE_SUFFIXES = {".png", ".jpg", ".jpeg", ".jpe", ".webp", ".gif", ".bmp", ".tif", ".tiff", ".mpo"}

LIMITS_TEXT = (f"up to {MAX_PICTURES} pictures ({FORMATS_TEXT}) or one zip of them of at most "
               f"{MAX_ZIP_BYTES // 2**20} MB; each picture at most {MAX_PICTURE_BYTES // 2**20} MB and 40 megapixels")


class NothingIndexed(InputError):
    """No file could be indexed; `skipped` says why for each."""

    def __init__(self, message: str, skipped: list[Skipped]):
        super().__init__(message)
        self.skipped = skipped


@dataclass(frozen=True)
class Skipped:
    file: str  # the name the visitor knows it by (a zip member: "photos.zip/holiday/img1.jpg")
    reason: str  # one sentence


@dataclass(frozen=True)
class _Candidate:
    name: str  # unique within the collection: the hit's id and caption
    read: Callable[[], bytes]  # at most MAX_PICTURE_BYTES + 1 bytes


@dataclass
class PrivateCollection:
    handle: str
    model: str
    index: object  # index.LoadedIndex, in memory
    skipped: list[Skipped]
    seconds: float  # how long the build took, reading included

    @property
    def count(self) -> int:
        return int(self.index.index.ntotal)

    @property
    def nbytes(self) -> int:
        """Memory the collection holds: its vectors (in the index) and its thumbnails."""
        return int(self.index.index.ntotal * self.index.index.d * 4 + self.index.meta["image"].map(len).sum())

    def label(self) -> str:
        return f"your pictures ({self.count} {'picture' if self.count == 1 else 'pictures'})"


# ------------------------------------------------------------------------------------------------ reading
def gather(files: Sequence[object], allowed_dirs: Sequence[Path]) -> tuple[list[_Candidate], list[Skipped]]:
    """The pictures to read from uploaded `files` (paths or gradio FileData dicts; loose pictures or one zip),
    and what was skipped already, without decoding anything."""
    candidates: list[_Candidate] = []
    skipped: list[Skipped] = []
    names: set[str] = set()
    zips = 0
    for f in files or ():
        path, shown = _path_and_name(f)
        reason = _unreadable_path(path, allowed_dirs)
        if reason:
            skipped.append(Skipped(shown, reason))
            continue
        if _is_zip(path):
            zips += 1
            if zips > 1:
                skipped.append(Skipped(shown, "Only one zip per collection is read; put all your pictures in one."))
                continue
            found, bad = _zip_members(path, shown)
            skipped += bad
            for name, read in found:
                candidates.append(_Candidate(_unique(name, names), read))
            continue
        size = path.stat().st_size
        if size > MAX_PICTURE_BYTES:
            skipped.append(Skipped(shown, _too_big(size)))
        elif size == 0:
            skipped.append(Skipped(shown, "The file is empty."))
        else:
            candidates.append(_Candidate(_unique(shown, names), lambda p=path: _read_capped(p)))
    if len(candidates) > MAX_PICTURES:
        over = candidates[MAX_PICTURES:]
        skipped += [Skipped(c.name, f"Beyond the limit of {MAX_PICTURES} pictures per collection; not read.") for c in over]
        candidates = candidates[:MAX_PICTURES]
    return candidates, skipped


def _path_and_name(f: object) -> tuple[Path, str]:
    if isinstance(f, dict):  # gradio FileData, as an API client sends it
        path = Path(str(f.get("path") or ""))
        return path, str(f.get("orig_name") or path.name)
    path = Path(str(getattr(f, "path", None) or getattr(f, "name", None) or f))
    return path, path.name


def _unreadable_path(path: Path, allowed_dirs: Sequence[Path]) -> str:
    try:
        resolved = path.resolve()
        allowed = any(resolved.is_relative_to(Path(d).resolve()) for d in allowed_dirs)
    except (OSError, ValueError):
        allowed = False
    if not allowed:
        log.warning("refused to read %r: outside the upload folders", str(path)[:200])
        return "This file cannot be read; please upload it."
    if not resolved.is_file():
        return "The uploaded file was not found; please upload it again."
    return ""


def _is_zip(path: Path) -> bool:
    with path.open("rb") as f:
        return f.read(4) in (b"PK\x03\x04", b"PK\x05\x06") or path.suffix.lower() == ".zip"


def _too_big(size: int, limit: int = MAX_PICTURE_BYTES) -> str:
    return f"The file is {size / 2**20:.1f} MB, above the limit of {limit // 2**20} MB a picture."


def _read_capped(path: Path) -> bytes:
    with path.open("rb") as f:
        return f.read(MAX_PICTURE_BYTES + 1)


def _unique(name: str, taken: set[str]) -> str:
    """`name`, or "name (2)", "name (3)"... when an earlier file had it: every hit must be told apart."""
    candidate, n = name, 1
    while candidate in taken:
        n += 1
        stem, dot, suffix = name.rpartition(".")
        candidate = f"{stem} ({n}).{suffix}" if dot and stem else f"{name} ({n})"
    taken.add(candidate)
    return candidate


def _zip_members(path: Path, shown: str) -> tuple[list[tuple[str, Callable[[], bytes]]], list[Skipped]]:
    """(name, read) of each picture in the zip, and the members skipped with their reasons. Nothing is unpacked
    to disk; each read is capped, and all reads together stop at MAX_ZIP_UNPACKED_BYTES."""
    size = path.stat().st_size
    if size > MAX_ZIP_BYTES:
        return [], [Skipped(shown, f"The zip is {size / 2**20:.1f} MB, above the limit of {MAX_ZIP_BYTES // 2**20} "
                                   "MB; nothing in it was read.")]
    entries = _zip_entry_count(path)
    if entries is None:
        return [], [Skipped(shown, "This zip is damaged or not a zip; nothing in it was read.")]
    if entries > MAX_ZIP_ENTRIES:
        return [], [Skipped(shown, f"The zip holds {entries:,} entries, above the limit of {MAX_ZIP_ENTRIES:,}; "
                                   "nothing in it was read.")]
    try:
        zf = zipfile.ZipFile(path)
        infos = zf.infolist()
    except (zipfile.BadZipFile, OSError, ValueError, EOFError):
        return [], [Skipped(shown, "This zip is damaged or not a zip; nothing in it was read.")]
    budget = _Budget(MAX_ZIP_UNPACKED_BYTES)
    found, skipped = [], []
    for info in infos:
        if info.is_dir():
            continue
        name = f"{shown}/{info.filename}"
        reason = _member_problem(info)
        if reason:
            skipped.append(Skipped(name, reason))
        else:
            found.append((info.filename, lambda i=info: _read_member(zf, i, budget)))
    return found, skipped


def _zip_entry_count(path: Path) -> int | None:
    """Entries in the zip's directory, from its end record: known before zipfile reads the directory whole."""
    try:
        with path.open("rb") as f:
            end = zipfile._EndRecData(f)  # the stdlib's own end-of-directory reader
    except OSError:
        return None
    return None if end is None else int(end[zipfile._ECD_ENTRIES_TOTAL])


_DRIVE = re.compile(r"^[A-Za-z]:")


def _member_problem(info: zipfile.ZipInfo) -> str:
    raw = info.orig_filename
    parts = PurePosixPath(raw.replace("\\", "/")).parts
    if raw.startswith(("/", "\\")) or _DRIVE.match(raw) or ".." in parts or "\x00" in raw:
        return "Its path leads outside the zip's folder; skipped for safety."
    if stat.S_ISLNK(info.external_attr >> 16):
        return "It is a link, not a picture."
    if info.flag_bits & 0x1:
        return "It is encrypted; only unencrypted pictures can be read."
    if parts and (parts[0] == "__MACOSX" or parts[-1].startswith("._")):
        return "It is macOS metadata, not a picture."
    suffix = PurePosixPath(raw).suffix.lower()
    if suffix not in PICTURE_SUFFIXES:
        kind = "a zip inside the zip" if suffix == ".zip" else f"not a picture ({suffix or 'no extension'})"
        return f"It is {kind}; only {FORMATS_TEXT} pictures are indexed."
    if info.file_size > MAX_PICTURE_BYTES:
        return _too_big(info.file_size)
    if info.file_size == 0:
        return "The file is empty."
    return ""


class _Budget:
    """Bytes a zip may still unpack, over all its members (thread-safe: reads may run in a worker)."""

    def __init__(self, total: int):
        self.left = total
        self._lock = threading.Lock()

    def take(self, n: int) -> bool:
        with self._lock:
            self.left -= n
            return self.left >= 0


def _read_member(zf: zipfile.ZipFile, info: zipfile.ZipInfo, budget: _Budget) -> bytes:
    try:
        with zf.open(info) as f:  # the declared size may lie: the read itself is capped
            data = f.read(MAX_PICTURE_BYTES + 1)
    except (zipfile.BadZipFile, OSError, ValueError, EOFError, NotImplementedError, RuntimeError) as e:
        log.info("unreadable zip member %s: %s", info.filename, e)
        raise InputError("This member of the zip is damaged or uses a compression we cannot read.") from None
    if not budget.take(len(data)):
        raise InputError(f"The zip unpacks to more than {MAX_ZIP_UNPACKED_BYTES // 2**20} MB; the rest was not read.")
    return data


# ------------------------------------------------------------------------------------------------ decoding
def decode(data: bytes) -> Image.Image:
    """An upright RGB picture of long side at most EMBED_MAX_SIDE, or InputError with the reason: not a picture,
    too many pixels (checked from the header, before decoding), or damaged / cut short."""
    if len(data) > MAX_PICTURE_BYTES:
        raise InputError(_too_big(len(data)))
    try:
        img = Image.open(io.BytesIO(data), formats=IMAGE_FORMATS)  # the header only
    except (Image.DecompressionBombError, Image.DecompressionBombWarning):
        raise InputError("The picture has too many pixels (a decompression bomb?); our limit is 40 megapixels.") from None
    except Exception:  # noqa: BLE001 - any failure to parse a header means the same to the visitor
        raise InputError(f"This file is not an image we can read ({FORMATS_TEXT}).") from None
    w, h = img.size
    check_image_size(w, h)  # before decoding: a bomb stops here
    if img.format == "JPEG" and max(w, h) > 2 * EMBED_MAX_SIDE:
        img.draft("RGB", (EMBED_MAX_SIDE, EMBED_MAX_SIDE))  # decode a large JPEG at 1/2, 1/4 or 1/8 scale
    try:
        picture = load_image(img)
    except InputError:
        raise InputError(f"This file is not an image we can read: it is damaged or cut short (its header says a "
                         f"{w}×{h} {img.format} picture, but its pixels cannot be decoded).") from None
    if max(picture.size) > EMBED_MAX_SIDE:
        picture.thumbnail((EMBED_MAX_SIDE, EMBED_MAX_SIDE), Image.Resampling.BICUBIC)
    return picture


def _thumbnail(picture: Image.Image) -> bytes:
    """What the gallery shows: a small picture as PNG, a larger one as a JPEG of THUMBNAIL_PX (as the bundled
    photo collections keep theirs, `core.indexing.thumbnail`)."""
    if max(picture.size) <= THUMBNAIL_PX:
        return image_to_png_bytes(picture)
    small = picture.copy()
    small.thumbnail((THUMBNAIL_PX, THUMBNAIL_PX))
    buf = io.BytesIO()
    small.save(buf, format="JPEG", quality=85)
    return buf.getvalue()


# ------------------------------------------------------------------------------------------------ building
def build_collection(encoder, model: str, candidates: Sequence[_Candidate], skipped: list[Skipped],
                     progress: Callable[[int, int], None] | None = None) -> PrivateCollection:
    """Read, decode, embed and index `candidates`, BATCH at a time (memory stays bounded), through the same
    embedding and index code as the bundled collections. `progress(done, total)` after each batch."""
    from index import IndexInfo, LoadedIndex, build_index, choose_factory, utc_now
    from core.indexing import embed_batch

    start = time.monotonic()
    skipped = list(skipped)
    vectors, names, thumbs = [], [], []
    total = len(candidates)
    if progress:
        progress(0, total)
    for at in range(0, total, BATCH):
        pictures, batch_names = [], []
        for cand in candidates[at : at + BATCH]:
            try:
                picture = decode(cand.read())
            except InputError as e:
                skipped.append(Skipped(cand.name, str(e)))
                continue
            pictures.append(picture)
            batch_names.append(cand.name)
            thumbs.append(_thumbnail(picture))
        if pictures:
            done = embed_batch(encoder, batch_names, pictures)  # the bundled collections' embedding step
            vectors.append(done.xb)
            names += batch_names
        if progress:
            progress(min(total, at + BATCH), total)
    if not names:
        reasons = "; ".join(f"{s.file}: {s.reason}" for s in skipped[:3]) + ("; …" if len(skipped) > 3 else "")
        raise NothingIndexed(f"None of your {len(skipped)} files could be indexed ({reasons})" if skipped
                             else "No pictures were found in what you uploaded.", skipped)
    xb = np.ascontiguousarray(np.concatenate(vectors), dtype=np.float32)  # (N, D)
    factory = choose_factory(len(xb), xb.shape[1])
    seconds = time.monotonic() - start
    info = IndexInfo(model=model, model_revision=encoder.revision, dim=int(xb.shape[1]), metric="inner_product",
                     count=len(xb), factory=factory, dataset="your pictures", dataset_revision=None, split="upload",
                     build_date=utc_now(), extra={"build_seconds": round(seconds, 2), "skipped": len(skipped)})
    meta = pd.DataFrame({"id": names, "caption": names, "image": thumbs})
    handle = HANDLE_PREFIX + secrets.token_urlsafe(16)
    index = LoadedIndex(build_index(xb, factory), meta, info, Path(handle))
    return PrivateCollection(handle, model, index, skipped, time.monotonic() - start)


# ------------------------------------------------------------------------------------------------ sessions
@dataclass
class _Session:
    collection: PrivateCollection | None = None
    building: bool = False
    last_used: float = field(default_factory=time.monotonic)
    folder: Path | None = None  # created on first use, for files the session downloads


class BuildSlots:
    """At most `n` builds at once, first come first served; a waiter is told its place in the line."""

    def __init__(self, n: int = 1):
        self.n = n
        self._line: list[object] = []  # tickets waiting or running, in arrival order
        self._cond = threading.Condition()

    @contextmanager
    def turn(self, waiting: Callable[[int], None] | None = None, poll_s: float = 0.5) -> Iterator[None]:
        """Hold a slot for the block; while none is free, `waiting(builds_ahead)` whenever that number changes."""
        ticket = object()
        with self._cond:
            self._line.append(ticket)
            told = None
            while (place := self._line.index(ticket)) >= self.n:  # place: builds ahead, running or waiting
                if waiting and place != told:
                    told = place
                    self._cond.release()
                    try:
                        waiting(place)
                    finally:
                        self._cond.acquire()
                    continue
                self._cond.wait(poll_s)
        try:
            yield
        finally:
            with self._cond:
                self._line.remove(ticket)
                self._cond.notify_all()

    def busy(self) -> int:
        with self._cond:
            return len(self._line)


class PrivateCollections:
    """Every session's private collection, for one app; see the module docstring for the rules."""

    def __init__(self, idle_s: float = IDLE_S, max_sessions: int = MAX_SESSIONS, parallel_builds: int = 1,
                 root: Path | None = None):
        self.idle_s = idle_s
        self.max_sessions = max_sessions
        self.slots = BuildSlots(parallel_builds)
        self._root = Path(root) if root else None
        self._sessions: dict[str, _Session] = {}
        self._lock = threading.Lock()
        self._sweeper: threading.Thread | None = None

    # ---- building
    def build(self, session: str | None, files: Sequence[object], encoder, model: str, allowed_dirs: Sequence[Path],
              progress: Callable[[int, int], None] | None = None,
              waiting: Callable[[int], None] | None = None) -> PrivateCollection:
        """Index `files` for `session`, replacing its previous collection once the new one is ready."""
        session = _check_session(session)
        if not files:
            raise InputError("Upload some pictures (or one zip of them) first.")
        with self._lock:
            entry = self._sessions.get(session)
            holds = entry is not None and (entry.collection is not None or entry.building)
            if not holds and self._held() >= self.max_sessions:
                raise InputError("The server holds as many private collections as it can right now; please try again "
                                 f"in a few minutes (unused ones are freed after {self.idle_s / 60:.0f} minutes).")
            entry = self._sessions.setdefault(session, _Session())
            if entry.building:
                raise InputError("Your pictures are already being indexed; wait for that build to finish.")
            entry.building, entry.last_used = True, time.monotonic()
        try:
            candidates, skipped = gather(files, allowed_dirs)
            with self.slots.turn(waiting):
                collection = build_collection(encoder, model, candidates, skipped, progress)
            with self._lock:
                entry.collection, entry.last_used = collection, time.monotonic()
        finally:
            with self._lock:
                entry.building = False
        self._start_sweeper()
        log.info("built a private collection: %d pictures, %d skipped, %s, %.1f s", collection.count,
                 len(collection.skipped), model, collection.seconds)
        return collection

    # ---- finding
    def get(self, session: str | None, handle: str) -> PrivateCollection:
        """The session's collection with this handle; anything else (another session's, expired, made up) is the
        same error, which says nothing about other sessions."""
        with self._lock:
            entry = self._sessions.get(session or "")
            found = entry.collection if entry else None
            if found is None or not secrets.compare_digest(found.handle, str(handle)):
                raise InputError("That private collection is not available in this session: your pictures are kept "
                                 f"until your session ends or for {self.idle_s / 60:.0f} minutes without use; "
                                 "upload them again to search them.")
            entry.last_used = time.monotonic()
            return found

    def of_session(self, session: str | None) -> PrivateCollection | None:
        with self._lock:
            entry = self._sessions.get(session or "")
            return entry.collection if entry else None

    def folder(self, session: str | None) -> Path:
        """The session's own temporary folder (created on first use, removed with the session); without a session,
        the app's shared one."""
        key = session or ""
        with self._lock:
            if self._root is None:
                self._root = Path(tempfile.mkdtemp(prefix="vlstudio-sessions-"))
            entry = self._sessions.setdefault(key, _Session())
            if entry.folder is None:  # a random name: a session id never becomes a path
                entry.folder = Path(tempfile.mkdtemp(dir=self._root))
            entry.last_used = time.monotonic()
            folder = entry.folder
        self._start_sweeper()
        return folder

    # ---- freeing
    def forget(self, session: str | None) -> bool:
        """Free the session's collection and its folder now (its session ended)."""
        with self._lock:
            entry = self._sessions.pop(session or "", None)
        if entry is None:
            return False
        _remove(entry)
        return True

    def sweep(self, now: float | None = None) -> int:
        """Forget every session idle for more than `idle_s` (none that is building); how many were."""
        now = time.monotonic() if now is None else now
        with self._lock:
            idle = [s for s, e in self._sessions.items() if s and not e.building and now - e.last_used > self.idle_s]
            entries = [self._sessions.pop(s) for s in idle]
        for entry in entries:
            _remove(entry)
        if entries:
            log.info("freed %d idle private collections", len(entries))
        return len(entries)

    def sessions(self) -> int:
        with self._lock:
            return self._held()

    def _held(self) -> int:
        return sum(1 for e in self._sessions.values() if e.collection is not None or e.building)

    def _start_sweeper(self) -> None:
        with self._lock:
            if self._sweeper is not None and self._sweeper.is_alive():
                return
            self._sweeper = threading.Thread(target=self._sweep_loop, name="private-collections-sweeper", daemon=True)
            self._sweeper.start()

    def _sweep_loop(self) -> None:
        while True:
            time.sleep(min(60.0, max(0.05, self.idle_s / 4)))
            self.sweep()
            with self._lock:
                if not any(s for s in self._sessions):
                    self._sweeper = None
                    return


def _check_session(session: str | None) -> str:
    if not session:
        raise InputError("Your pictures need a session: open the app in a browser, or call it with gradio_client.")
    return session


def _remove(entry: _Session) -> None:
    entry.collection = None
    if entry.folder is not None:
        shutil.rmtree(entry.folder, ignore_errors=True)
