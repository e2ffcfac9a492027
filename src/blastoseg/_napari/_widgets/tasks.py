"""Running core work off the GUI thread, with napari's progress bar and a Cancel.

`Task` drives a generator in napari's `thread_worker` and relays what it yields to the
widget on the GUI thread. With `SYNC` true (env `BLASTOSEG_SYNC_WORKERS=1`, or set by
tests) the same generator runs inline, so tests see results without waiting on threads.
Cancel is cooperative: the generator is closed at its next yield, which for training is
the end of the current step.
"""

from __future__ import annotations

import logging
import os
import queue
import sys
import threading
from collections.abc import Callable, Generator
from typing import Any, TypeVar

T = TypeVar("T")
SYNC = os.environ.get("BLASTOSEG_SYNC_WORKERS", "") not in ("", "0")
CANCELLED = object()  # what a cancelled task returns
_log = logging.getLogger("blastoseg")


def notify(level: str, message: str) -> None:
    """A napari notification (no traceback dialog); level is "error", "warning" or "info"."""
    from napari.utils import notifications

    {"error": notifications.show_error, "warning": notifications.show_warning}.get(level, notifications.show_info)(message)


def avoid_llvm_clash() -> None:
    """Keep torch from loading triton once Mesa's OpenGL has loaded its own LLVM.

    Two LLVM copies in one process crash it (seen with Mesa llvmpipe and triton 3, on
    the first optimizer step, which imports torch._dynamo and so triton). torch treats
    a missing triton as "no torch.compile", which blastoseg never uses.
    """
    if "triton" in sys.modules:
        return
    try:
        with open("/proc/self/maps") as maps:
            mesa_llvm = "libLLVM" in maps.read()
    except OSError:  # not Linux: no Mesa LLVM to clash with
        return
    if mesa_llvm:
        sys.modules["triton"] = None  # type: ignore[assignment] - makes `import triton` raise ImportError


class _Stop(Exception):
    """Raised inside a progress callback to stop work that was cancelled."""


def pump(run: Callable[[Callable[[int, int], None]], T]) -> Generator[tuple[int, int], None, T]:
    """Turn `run(progress)`, which reports by callback, into a generator of (done, total).

    `run` executes on a helper thread; closing the generator makes its next progress
    call raise, so work such as `segment_frames` stops within one network pass.
    """
    events: queue.Queue = queue.Queue()
    stop = threading.Event()

    def progress(done: int, total: int) -> None:
        if stop.is_set():
            raise _Stop
        events.put(("progress", (done, total)))

    def target() -> None:
        try:
            events.put(("done", run(progress)))
        except BaseException as error:  # noqa: BLE001 - handed back to the caller's thread
            events.put(("error", error))

    thread = threading.Thread(target=target, name="blastoseg-work", daemon=True)
    thread.start()
    try:
        while True:
            kind, value = events.get()
            if kind == "progress":
                yield value
            elif kind == "done":
                return value
            else:
                raise value
    finally:
        stop.set()
        thread.join()


class Progress:
    """One napari progress bar fed with (done, total) pairs; cancel from the activity dock works."""

    def __init__(self, desc: str, on_cancel: Callable[[], None]) -> None:
        self.desc, self.on_cancel = desc, on_cancel
        self.bar: Any = None

    def set(self, done: int, total: int) -> None:
        from napari.utils import cancelable_progress

        if self.bar is None:
            self.bar = cancelable_progress(total=total, desc=self.desc, cancel_callback=self.on_cancel)
        if self.bar.total != total:
            self.bar.total = total
        if done > self.bar.n:
            self.bar.update(done - self.bar.n)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
            self.bar = None


class Task:
    """A generator run in a napari thread_worker (or inline when SYNC)."""

    def __init__(
        self,
        work: Callable[[], Generator[Any, None, Any]],
        on_yield: Callable[[Any], None],
        on_return: Callable[[Any], None],
        on_error: Callable[[BaseException], None],
        on_finish: Callable[[], None],
    ) -> None:
        self.work, self.on_yield, self.on_return = work, on_yield, on_return
        self.on_error, self.on_finish = on_error, on_finish
        self.cancel_requested = threading.Event()
        self.worker: Any = None

    def _guarded(self) -> Generator[Any, None, Any]:
        gen = self.work()
        try:
            while True:
                if self.cancel_requested.is_set():
                    return CANCELLED
                try:
                    item = next(gen)
                except StopIteration as stop:
                    return stop.value
                yield item
        finally:
            gen.close()

    def cancel(self) -> None:
        self.cancel_requested.set()

    def start(self) -> None:
        avoid_llvm_clash()
        if SYNC:
            self._run_inline()
            return
        from napari.qt.threading import create_worker

        gen = self._guarded()
        self.worker = create_worker(lambda: (yield from gen), _start_thread=False)
        # napari's own cancel (status bar) aborts the worker without resuming the
        # generator; closing it here stops the work and runs its clean-up.
        self.worker.aborted.connect(gen.close)
        self.worker.yielded.connect(self.on_yield)
        self.worker.returned.connect(self.on_return)
        self.worker.errored.connect(self._error)
        self.worker.finished.connect(self.on_finish)
        self.worker.start()

    def _error(self, error: BaseException) -> None:
        _log.debug("blastoseg task failed", exc_info=error)
        self.on_error(error)

    def _run_inline(self) -> None:
        gen = self._guarded()
        try:
            while True:
                try:
                    item = next(gen)
                except StopIteration as stop:
                    result = stop.value
                    break
                self.on_yield(item)
        except Exception as error:  # noqa: BLE001 - shown to the user as a notification
            self._error(error)
        else:
            self.on_return(result)
        finally:
            self.on_finish()


def error_message(error: BaseException) -> str:
    """The user-facing text of an exception raised by the core (which words its errors for users)."""
    if isinstance(error, (ValueError, FileNotFoundError, FileExistsError, KeyError, RuntimeError, OSError)):
        return str(error).strip("'\"") or error.__class__.__name__
    return f"unexpected {error.__class__.__name__}: {error}. Please report this with the steps that led to it"
