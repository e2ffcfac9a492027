"""One task, run in whichever process holds it: the in-process loop or a Dask worker.

A process loads each model once (`loaded_model`), however many tasks it runs, and sets
its torch threads once, so workers × threads stays within the machine's cores.
"""

from __future__ import annotations

import json
import os
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from blastoseg.batch.inputs import Task
from blastoseg.batch.naming import EMBRYO_CSV, FRAMES_CSV, zona_path

if TYPE_CHECKING:
    from blastoseg.model import Model

_MODELS: dict[tuple[str, str], Model] = {}
_LOCK = threading.Lock()


@dataclass(frozen=True)
class Options:
    """How every task of a run is segmented; plain values, so it travels to any worker."""

    model: str
    out_dir: str
    tta: bool = True
    tile: int | None = None
    device: str = "auto"
    auto_scale: bool = True
    overwrite: bool = False
    pixel_size: float = 1.0
    threads: int | None = None  # torch threads in this process; None keeps torch's choice


@dataclass(frozen=True)
class Outcome:
    """What a task gave: its manifest row, and the cell and frame counts for the log."""

    task: Task
    status: str
    outputs: tuple[str, ...] = ()
    error: str = ""
    model: str = ""
    model_sha256: str = ""
    blastoseg_version: str = ""
    seconds: float = 0.0
    cells: int = 0
    frames: int = 0
    bad_input: bool = False  # a failure the input is at fault for, not the machine (a full disk, no memory)

    def row(self) -> dict[str, object]:
        return {"input": self.task.input, "kind": self.task.kind, "name": self.task.name, "status": self.status,
                "outputs": ";".join(Path(p).name for p in self.outputs), "error": self.error, "model": self.model,
                "model_sha256": self.model_sha256, "blastoseg_version": self.blastoseg_version,
                "seconds": f"{self.seconds:.2f}", "finished": time.strftime("%Y-%m-%dT%H:%M:%S%z")}


def loaded_model(spec: str, device: str) -> Model:
    """The model `spec` (a name or a path), loaded once per process and device."""
    from blastoseg.checkpoint import load

    with _LOCK:  # two threads of one worker must not both load it
        key = (spec, device)
        if key not in _MODELS:
            _MODELS[key] = load(spec, device=device)
        return _MODELS[key]


def set_threads(threads: int | None) -> None:
    """Torch threads for this process: `threads`, or on a Dask worker the machine's cores
    shared among the worker's task threads."""
    _undo_malloc_trim()
    if threads is None:
        threads = _worker_share()
    if threads is None:
        return
    import torch

    if torch.get_num_threads() != threads:
        torch.set_num_threads(threads)


_MALLOC_TUNED = False


def _undo_malloc_trim() -> None:
    """Give glibc back its usual allocation thresholds in a Dask worker started with
    MALLOC_TRIM_THRESHOLD_ (Dask's nannies set 65536 by default).

    Setting that variable also fixes glibc's mmap threshold at 128 KiB, so every
    tensor above it is mapped and its pages faulted in again on each pass; a worker
    segmented a 500 x 500 frame 1.5-2.5x slower than this process did. 32 MiB / 64 MiB are
    the thresholds glibc itself grows to on 64-bit machines."""
    global _MALLOC_TUNED
    if _MALLOC_TUNED or not os.environ.get("MALLOC_TRIM_THRESHOLD_") or not sys.platform.startswith("linux"):
        return
    _MALLOC_TUNED = True
    try:
        import ctypes

        libc = ctypes.CDLL(None)
        m_trim_threshold, m_mmap_threshold = -1, -3  # <malloc.h>
        libc.mallopt(m_mmap_threshold, 32 * 2**20)
        libc.mallopt(m_trim_threshold, 64 * 2**20)
    except (OSError, AttributeError):  # not glibc: nothing to undo
        pass


def _worker_share() -> int | None:
    try:
        from distributed import get_worker

        worker = get_worker()
    except (ImportError, ValueError):
        return None
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    return max(1, cores // max(1, worker.state.nthreads))


def one_line(error: BaseException) -> str:
    """An error as one line for the manifest and the summary (no traceback), in the
    command line's words: a full disk says so and what to do."""
    from blastoseg.cli.common import error_message

    if isinstance(error, (ValueError, OSError, MemoryError)):
        return error_message(error)
    text = " ".join(str(error).split())
    return f"{type(error).__name__}: {text}" if text else type(error).__name__


def run_task(task: Task, options: Options, progress: Callable[[int, int], None] | None = None) -> Outcome:
    """Segment one task and write its result; a failure is returned, never raised, so
    one bad input cannot stop the others."""
    from blastoseg import __version__

    start = time.perf_counter()
    if task.problem:
        return Outcome(task, "failed", error=task.problem, blastoseg_version=__version__, bad_input=True)
    model = None
    try:
        set_threads(options.threads)
        model = loaded_model(options.model, options.device)
        written = _segment(task, model, options, progress)
    except Exception as error:  # reported per input; the run goes on
        from blastoseg.cli.common import is_input_error

        return Outcome(task, "failed", error=one_line(error), model=model.name if model else "",
                       model_sha256=model.sha256 if model else "", blastoseg_version=__version__,
                       seconds=time.perf_counter() - start, bad_input=is_input_error(error))
    return Outcome(task, "done", tuple(str(p) for p in written.paths), "", model.name, model.sha256, __version__,
                   time.perf_counter() - start, written.cells, written.frames)


def _segment(task: Task, model: Model, options: Options, progress: Callable[[int, int], None] | None) -> Any:
    from blastoseg import files, io

    out = Path(options.out_dir)
    common = dict(tta=options.tta, tile=options.tile, device=options.device, auto_scale=options.auto_scale, progress=progress)
    stale_zona = zona_path(out, task.name)
    if not task.timelapse:
        path = Path(task.sources[0])
        written = files.segment_image(io.read_image(path), task.name, model, out, source=str(path), label=path.name, **common)
    else:
        paths = [Path(p) for p in task.sources]
        record = {"kind": "timelapse", "frames": json.dumps([p.name for p in paths]), "well": task.well, "focal": task.focal,
                  "frame_times_h": json.dumps(list(task.times_h)) if task.times_h is not None else "",
                  "frame_times_from": task.times_from}

        def tables(found: list, embryos: list) -> list[Path]:
            from blastoseg import __version__
            from blastoseg.batch.exports import measure_result
            from blastoseg.tables import write_table

            full = {"method": model.method.name, "model": model.name, "model_sha256": model.sha256, "source": task.input,
                    "blastoseg_version": __version__, **record}
            _, per_frame, embryo = measure_result(found, full, f"{task.name}_amodal.tif", embryos, task.times_h, options.pixel_size)
            import pandas as pd

            return [write_table(per_frame, out / f"{task.name}{FRAMES_CSV}"),
                    write_table(pd.DataFrame([embryo] if embryo else []), out / f"{task.name}{EMBRYO_CSV}")]

        written = files.segment_image(files.read_frames(paths), task.name, model, out, source=task.input, label=task.name,
                                      provenance=record, before_amodal=tables, **common)
    if stale_zona.exists() and stale_zona not in written.others:
        stale_zona.unlink()  # an overwritten result's zona, from a model that localised embryos
    return written
