"""What the commands share: progress bars, warnings and JSON output."""

from __future__ import annotations

import contextlib
import sys
from collections.abc import Callable, Iterable, Iterator
from typing import TYPE_CHECKING, Any, TypeVar

if TYPE_CHECKING:
    from tqdm import tqdm

T = TypeVar("T")


def progress(items: Iterable[T], desc: str, total: int | None = None, unit: str = "image") -> Iterable[T]:
    from tqdm import tqdm

    return tqdm(items, desc=desc, total=total, file=sys.stderr, unit=unit, dynamic_ncols=True)


def bar(total: int, desc: str, unit: str) -> tqdm:
    from tqdm import tqdm

    return tqdm(total=total, desc=desc, unit=unit, file=sys.stderr, dynamic_ncols=True)


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


def jsonable(value: Any) -> Any:
    """numpy scalars (and NaN from empty sets) as plain JSON values."""
    if hasattr(value, "item"):
        value = value.item()
    if isinstance(value, float) and value != value:
        return None
    return value
