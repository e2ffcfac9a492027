"""What the commands share: progress bars, warnings, one-line errors and JSON output."""

from __future__ import annotations

import contextlib
import errno
import sys
import warnings
from collections.abc import Callable, Iterable, Iterator
from typing import TYPE_CHECKING, Any, TypeVar

if TYPE_CHECKING:
    from tqdm import tqdm

T = TypeVar("T")


def progress(items: Iterable[T], desc: str, total: int | None = None, unit: str = "image") -> Iterable[T]:
    from tqdm import tqdm

    return tqdm(items, desc=desc, total=total, file=sys.stderr, unit=unit, dynamic_ncols=True)


def bar(total: int, desc: str, unit: str, rate: bool = True) -> tqdm:
    """A progress bar; without `rate`, percent done, elapsed time and the postfix only
    (a bar over a budget's percent would otherwise read "%/s")."""
    from tqdm import tqdm

    shape = None if rate else "{desc}: {percentage:3.0f}%|{bar}| [{elapsed}{postfix}]"
    return tqdm(total=total, desc=desc, unit=unit, file=sys.stderr, dynamic_ncols=True, bar_format=shape)


@contextlib.contextmanager
def pass_progress(desc: str) -> Iterator[Callable[[int, int], None]]:
    """A bar over network passes, and the `progress(done, total)` callback that drives it
    (the total grows when a frame is segmented again)."""
    with bar(0, desc, "pass") as passes:

        def update(done: int, total: int) -> None:
            passes.total = total
            passes.update(done - passes.n)

        yield update


def warn(message: str) -> None:
    print(f"blastoseg: warning: {message}", file=sys.stderr)


@contextlib.contextmanager
def notices_as_lines() -> Iterator[None]:
    """Print the library's `notices.Notice` warnings as `blastoseg: warning: ...` lines
    (each once), instead of Python's two lines with a source location."""
    from blastoseg.notices import Notice

    shown, said = warnings.showwarning, set()

    def show(message, category, filename, lineno, file=None, line=None):  # noqa: ANN001, ANN202
        if not issubclass(category, Notice):
            shown(message, category, filename, lineno, file, line)
        elif str(message) not in said:  # a time-lapse's frames often repeat one notice
            said.add(str(message))
            warn(str(message))

    with warnings.catch_warnings():
        warnings.simplefilter("always", Notice)
        warnings.showwarning = show
        yield


# Errors in what the user asked for (exit code 2); other system errors and a lack of memory
# are the machine's (exit code 1).
INPUT_ERRORS = (ValueError, FileNotFoundError, FileExistsError, NotADirectoryError, IsADirectoryError, PermissionError)

# What the user can do about the system errors a command may meet.
_ADVICE = {
    errno.ENOSPC: "the disk is full; free some space and run the command again (no file was left half-written)",
    errno.EDQUOT: "the disk quota is exhausted; free some space and run the command again (no file was left half-written)",
    errno.EROFS: "the file system is read-only; write the output somewhere else",
    errno.EEXIST: "it exists and is not a folder; choose another output folder",
    errno.ENOTDIR: "a part of the path is a file, not a folder",
    errno.EISDIR: "it is a folder; give a file name",
    errno.EACCES: "permission denied; choose a place you may write to",
}


def is_input_error(error: BaseException) -> bool:
    """Whether the user's input is at fault (exit code 2), not the machine (exit code 1)."""
    return isinstance(error, INPUT_ERRORS)


def check_positive(value: float | None, what: str, unit: str, flag: str) -> None:
    """Refuse an option that must be a positive, finite number (NaN included), naming it."""
    if value is not None and not 0 < value < float("inf"):
        raise ValueError(f"the {what} must be a positive number of {unit} ({flag}); got {value:g}")


def error_message(error: BaseException) -> str:
    """One line saying what went wrong and what to do, for an error the user can fix."""
    if isinstance(error, MemoryError):
        return ("out of memory; use a smaller image or fewer frames per file, tiles (--tile 512) or a machine "
                "with more memory")
    if isinstance(error, OSError) and error.strerror:  # raised by the system, not by blastoseg's checks
        where = f"{error.filename}: " if error.filename else ""
        return where + _ADVICE.get(error.errno, error.strerror)
    return " ".join(str(error).split()) or error.__class__.__name__


def jsonable(value: Any) -> Any:
    """numpy scalars (and NaN from empty sets) as plain JSON values."""
    if hasattr(value, "item"):
        value = value.item()
    if isinstance(value, float) and value != value:
        return None
    return value
