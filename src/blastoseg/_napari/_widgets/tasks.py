"""Running core work off the GUI thread, with napari's progress bar and a Cancel.

`Task` drives a generator in napari's `thread_worker` and relays what it yields to the
widget on the GUI thread. With `SYNC` true (env `BLASTOSEG_SYNC_WORKERS=1`, or set by
tests) the same generator runs inline, so tests see results without waiting on threads.
Cancel is cooperative: the generator is closed at its next yield, which for training is
the end of the current step.
"""

from __future__ import annotations

import contextlib
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


class Stage(str):
    """What a task yields when it starts a step of its own (e.g. "loading the model")."""


class Progress:
    """A progress bar of the widget's own fed with (done, total) pairs and `Stage` names,
    shown as "<stage> <done>/<total>" (busy while a stage is not counted).

    The widget's own bar, not napari's activity dock: napari builds a new bar there for
    every task (~0.2 s of GUI time on a busy 2-core machine) and processes events inside
    each update, which stalls the window it is meant to keep alive.
    """

    def __init__(self, bar: Any, on_cancel: Callable[[], None] | None = None) -> None:
        self.bar, self.on_cancel = bar, on_cancel
        self.stage = ""
        if bar is not None:
            bar.visible = True
            bar.max = 0  # busy until the task names its first step

    def show(self, item: Any) -> None:
        """Show what a task yielded: a Stage, or (done, total)."""
        if isinstance(item, Stage):
            self.begin(item)
        else:
            self.set(*item)

    def begin(self, stage: str, total: int = 0) -> None:
        """A new step: its name, and how many counts it has (0 = busy, not counted)."""
        self.stage = stage
        if self.bar is not None:
            self.bar.max = total
            self.bar.value = 0
            self._label(0, total)

    def set(self, done: int, total: int) -> None:
        if self.bar is not None:
            if self.bar.max != total:
                self.bar.max = total
            self.bar.value = min(done, total)
            self._label(done, total)

    def _label(self, done: int, total: int) -> None:
        native = self.bar.native  # a QProgressBar
        if hasattr(native, "setFormat"):
            native.setFormat(f"{self.stage} %v/%m" if total else self.stage)
            native.setTextVisible(True)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.visible = False


# Python's full garbage collections walk every tracked object. With torch imported that
# took 0.4-0.5 s on a busy 2-core machine, holding the GIL: the whole window froze each
# time one ran, and adding a run's layers (or importing torch) set them off. While a
# widget works, the objects that exist are moved out of the collector's way
# (`gc.freeze`) and put back when it is done (`gc.unfreeze`), so nothing is kept alive
# for longer than that.
_holders = 0


def hold_collections() -> None:
    """Full collections skip today's objects until `release_collections` (calls nest)."""
    import gc

    global _holders
    if _holders == 0:
        gc.freeze()
    _holders += 1


def release_collections() -> None:
    import gc

    global _holders
    _holders = max(0, _holders - 1)
    if _holders == 0:
        gc.unfreeze()


@contextlib.contextmanager
def imports_without_stalls() -> Generator[None, None, None]:
    """Import heavy modules (torch) in a worker without freezing the window: no collection
    runs during the import, and what it made is then frozen like the rest (while held)."""
    import gc

    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if _holders:
            gc.freeze()
        if enabled:
            gc.enable()


def warm_up() -> None:
    """Import torch and the inference code in a background thread now, so that the first
    Run does not wait for it (and the window's one stall, ~0.35 s while torch's C core
    loads, comes when the dock opens rather than in the middle of segmenting)."""
    if SYNC or "torch" in sys.modules:
        return

    def load() -> None:
        with imports_without_stalls():
            import blastoseg.inference.predict  # noqa: F401 - imports torch

    threading.Thread(target=load, name="blastoseg-warm-up", daemon=True).start()


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
        from superqt.utils import GeneratorWorker

        gen = self._guarded()
        # superqt's plain worker with `errored` connected: napari's own worker class would
        # also report the error (a second notification, with a traceback), and an
        # unconnected `errored` re-raises it in the GUI thread (a third).
        self.worker = create_worker(lambda: (yield from gen), _start_thread=False, _worker_class=GeneratorWorker,
                                    _connect={"errored": self._error})
        # napari's own cancel (status bar) aborts the worker without resuming the
        # generator; closing it here stops the work and runs its clean-up.
        self.worker.aborted.connect(gen.close)
        self.worker.yielded.connect(self.on_yield)
        self.worker.returned.connect(self.on_return)
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


# The core words its errors for the command line; in napari the same advice names the widget's controls.
GUI_WORDING = (
    ("use --device cpu or auto", "choose Device 'auto' or 'cpu' under Advanced"),
    ("use --device cpu", "choose Device 'cpu' under Advanced"),
    ("--no-rescale", "unticking 'Shrink frames…' under Advanced"),
    ("--tile", "Tile size under Advanced"),
    ("--device", "Device under Advanced"),
)


def error_message(error: BaseException) -> str:
    """The user-facing text of an exception raised by the core (which words its errors for users)."""
    if isinstance(error, (ValueError, FileNotFoundError, FileExistsError, KeyError, RuntimeError, OSError)):
        text = str(error).strip("'\"") or error.__class__.__name__
        if "out of memory" in text.lower():
            return "the device ran out of memory; choose Device 'cpu' or a smaller Tile size under Advanced"
        for cli, gui in GUI_WORDING:
            text = text.replace(cli, gui)
        return text
    return f"unexpected {error.__class__.__name__}: {error}. Please report this with the steps that led to it"
