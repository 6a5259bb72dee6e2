"""Replace a folder atomically: a crash at any moment leaves the old complete folder or the new one.

The new content is written into a hidden sibling `.{name}.tmp-{pid}-*`, fsynced, then swapped with the target:
- on Linux, `renameat2(RENAME_EXCHANGE)` swaps both names in one step, so readers never see a gap;
- elsewhere (or on a file system without it) the old folder is renamed aside to `.{name}.old-{pid}-*` and the new
  one renamed into place. A crash between those two renames leaves no target but a complete aside copy, which
  `recover()` renames back (`core.sources.resolve` and `load_index` call it).
Leftovers of killed writers (their pid is gone) are removed by the next successful write to the same target.
"""
from __future__ import annotations

import ctypes
import errno
import logging
import os
import secrets
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

log = logging.getLogger(__name__)
_AT_FDCWD, _RENAME_EXCHANGE = -100, 2


def _fsync(path: Path) -> None:
    flags = os.O_RDONLY | getattr(os, "O_DIRECTORY", 0) if path.is_dir() else os.O_RDONLY
    try:
        fd = os.open(path, flags)
    except OSError:  # directories cannot be opened on Windows; nothing to sync there
        return
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _fsync_tree(folder: Path) -> None:
    for path in folder.rglob("*"):
        if path.is_file():
            _fsync(path)
    _fsync(folder)


def _exchange(a: Path, b: Path) -> bool:
    """Swap two paths in one atomic step; False where the OS or file system cannot."""
    try:
        renameat2 = ctypes.CDLL(None, use_errno=True).renameat2
    except (AttributeError, OSError):
        return False
    renameat2.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_int, ctypes.c_char_p, ctypes.c_uint]
    if renameat2(_AT_FDCWD, os.fsencode(a), _AT_FDCWD, os.fsencode(b), _RENAME_EXCHANGE) == 0:
        return True
    err = ctypes.get_errno()
    if err in (errno.EINVAL, errno.ENOSYS, errno.EOPNOTSUPP):
        return False
    raise OSError(err, f"cannot swap {a} and {b}: {os.strerror(err)}")


def _pid_alive(pid: int) -> bool:
    if os.name != "posix":
        return True  # os.kill(pid, 0) would signal the process on Windows; never clean up there
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (PermissionError, OSError):
        return True  # someone else's process, or no way to tell: leave its files alone
    return True


def _siblings(target: Path, kind: str, dead_only: bool = True) -> list[Path]:
    """Hidden `.{name}.{kind}-{pid}-*` siblings of `target`, newest first; by default only of writers now gone."""
    prefix = f".{target.name}.{kind}-"
    found = []
    for path in target.parent.iterdir():
        pid = path.name[len(prefix) :].split("-", 1)[0] if path.name.startswith(prefix) else ""
        if pid.isdigit() and not (dead_only and _pid_alive(int(pid))):
            found.append(path)
    return sorted(found, key=_mtime, reverse=True)


def _mtime(path: Path) -> float:
    try:
        return path.stat().st_mtime
    except OSError:  # removed meanwhile
        return 0.0


def recover(target: Path) -> bool:
    """If a crash left no `target` but a complete aside copy, put that copy back. True if it did."""
    target = Path(target)
    if target.exists():
        return False
    for aside in _siblings(target, "old", dead_only=False):  # a live writer between its renames fails safely
        try:
            os.rename(aside, target)
        except OSError:
            continue
        log.warning("restored %s from %s left by an interrupted write", target, aside.name)
        return True
    return False


def _swap_into_place(tmp: Path, target: Path) -> None:
    if not target.exists():
        os.rename(tmp, target)
    elif _exchange(tmp, target):
        shutil.rmtree(tmp, ignore_errors=True)  # tmp now holds the old content
    else:
        aside = target.with_name(f".{target.name}.old-{os.getpid()}-{secrets.token_hex(4)}")
        os.rename(target, aside)
        try:
            os.rename(tmp, target)
        except BaseException:
            os.rename(aside, target)
            raise
        shutil.rmtree(aside, ignore_errors=True)
    _fsync(target.parent)


@contextmanager
def replace_folder(target: Path) -> Iterator[Path]:
    """Yield an empty hidden sibling folder; when the block succeeds it atomically replaces `target`."""
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    recover(target)
    tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.tmp-{os.getpid()}-", dir=target.parent))
    tmp.chmod(0o755)  # mkdtemp makes it private; the final folder should read like any other
    try:
        yield tmp
        _fsync_tree(tmp)
        _swap_into_place(tmp, target)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    for stale in _siblings(target, "tmp") + _siblings(target, "old"):
        log.info("removing %s left by an interrupted write", stale)
        shutil.rmtree(stale, ignore_errors=True)
