"""Atomic writes, and the temporary files a killed write leaves behind.

Every file blastoseg writes goes first to a hidden temporary beside it,
`.<stem>.<pid>-<hex>.tmp<suffix>`, renamed over the real name when complete, so a
crash, Ctrl-C or full disk never leaves a half-written result under the real name.
A process killed outright (SIGKILL, power cut) cannot remove its temporary: readers
skip such names (`is_temporary`) and a later process's first write in that folder
removes those whose writer is gone (`remove_leftovers`).

Imports nothing heavy, so the model catalogue can use it without numpy or torch.
"""

from __future__ import annotations

import os
import re
import sys
import threading
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

# `.<stem>.<pid>-<hex>.tmp<suffix>`; earlier versions wrote `.<stem>.<hex>.tmp<suffix>`
# (atomic writes) and `.<stem>-<random>.tmp` (checkpoints), without the pid.
_TEMPORARY = re.compile(r"^\..+?[.-](?:(?P<pid>\d+)-)?[0-9a-zA-Z_]{8,12}\.tmp(?:\.[^.]+)?$")
# A temporary without a pid, or from another host, is taken as abandoned once this old.
STALE_SECONDS = 24 * 3600

_live: set[str] = set()  # this process's temporaries being written (threads share a process)
# Folders already cleared by this process: its own failed writes remove their temporaries,
# so one pass per folder suffices, and a batch writing thousands of files scans once.
_cleared: set[str] = set()
_lock = threading.Lock()


def is_temporary(path: str | os.PathLike) -> bool:
    """True for the name of a temporary file an atomic write uses (finished or abandoned)."""
    return bool(_TEMPORARY.match(Path(path).name))


def temporary_for(path: Path) -> Path:
    """A fresh temporary name beside `path`, keeping its suffix (writers pick the format by it)."""
    return path.parent / f".{path.stem}.{os.getpid()}-{uuid.uuid4().hex[:12]}.tmp{path.suffix}"


def _writer_gone(pid: int) -> bool:
    if pid == os.getpid():
        return True  # ours, and not in `_live`: a write of this process that was interrupted
    if sys.platform == "win32":  # os.kill there is not a probe; leave it to the age rule
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    except OSError:  # exists, owned by someone else
        return False
    return False


def remove_leftovers(folder: Path) -> list[Path]:
    """Remove the abandoned temporaries in `folder`: those whose writing process has exited,
    and any older than STALE_SECONDS. Another process's write in progress is left alone."""
    removed = []
    try:
        entries = list(os.scandir(folder))
    except OSError:
        return removed
    now = time.time()
    for entry in entries:
        if not entry.name.startswith(".") or ".tmp" not in entry.name:  # cheap: most names are results
            continue
        match = _TEMPORARY.match(entry.name)
        if not match or not entry.is_file(follow_symlinks=False):
            continue
        with _lock:
            if str(Path(entry.path)) in _live:
                continue
        pid = match.group("pid")
        try:
            old = now - entry.stat(follow_symlinks=False).st_mtime > STALE_SECONDS
            if old or (pid is not None and _writer_gone(int(pid))):
                os.unlink(entry.path)
                removed.append(Path(entry.path))
        except OSError:  # removed meanwhile, or not ours to remove
            continue
    return removed


def atomic_write(path: str | os.PathLike, write: Callable[[Path], Any]) -> Path:
    """Run `write(tmp)` on a temporary file beside `path`, then rename it over `path`.

    A crash or Ctrl-C mid-write never leaves a half-written result under the real name,
    and an existing file there stays as it was until the new one is complete.
    """
    path = Path(path)
    if not path.parent.is_dir():
        raise FileNotFoundError(f"cannot write {path}: folder {path.parent} does not exist")
    if path.is_dir():
        raise IsADirectoryError(f"cannot write {path}: it is a folder; give a file name")
    folder = str(path.parent.resolve())
    if folder not in _cleared:
        remove_leftovers(path.parent)
        with _lock:
            _cleared.add(folder)
    # A fresh unique name rather than mkstemp: mkstemp's 0600 mode would survive the rename.
    tmp = temporary_for(path)
    with _lock:
        _live.add(str(tmp))
    try:
        write(tmp)
        os.replace(tmp, path)
    except BaseException as error:
        tmp.unlink(missing_ok=True)
        if isinstance(error, OSError) and error.strerror and error.filename in (None, str(tmp), tmp):
            error.filename = str(path)  # the user knows the file they asked for, not our temporary
        raise
    finally:
        with _lock:
            _live.discard(str(tmp))
    return path
