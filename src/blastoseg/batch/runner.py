"""A batch run: what to skip, redo or replace, then the tasks in this process or on a
Dask cluster, each outcome into the manifest, and a summary.

Existing results are never replaced silently: a complete one (its amodal file, written
last, and the others) is skipped unless `overwrite`; an incomplete one, left by a run
that was stopped, is redone. So the same command run again finishes what is missing.
"""

from __future__ import annotations

import json
import re
import struct
import sys
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from blastoseg.batch.inputs import Task, check, refuse_collisions
from blastoseg.batch.manifest import NAME as MANIFEST
from blastoseg.batch.manifest import Manifest
from blastoseg.batch.naming import result_paths, zona_path
from blastoseg.batch.tasks import Options, Outcome, one_line, run_task

Notice = Callable[[str], None]
TEMP = re.compile(r"^\.(?P<stem>.+)\.[0-9a-f]{12}\.tmp(?P<suffix>\.[A-Za-z]+)$")  # io.atomic_write's temp files


@dataclass
class Summary:
    """The outcomes of a run, in the order they finished; `skipped`, the inputs whose
    complete results were kept (the manifest may record them as done by an earlier run)."""

    outcomes: list[Outcome] = field(default_factory=list)
    skipped: list[Outcome] = field(default_factory=list)
    manifest: Path | None = None

    def count(self, status: str) -> int:
        return len(self.skipped) if status == "skipped" else sum(o.status == status for o in self.outcomes)

    @property
    def failed(self) -> list[Outcome]:
        return [o for o in self.outcomes if o.status == "failed"]


def check_model(spec: str) -> None:
    """Refuse a model that is neither a known name nor a blastoseg checkpoint file, without
    importing torch: with a cluster, the workers load it, and each would fail alone."""
    from blastoseg.catalogue import list_models

    known = list_models()
    path = known.get(spec) or Path(spec)
    if path.is_dir():
        raise IsADirectoryError(f"{path} is a folder, not a checkpoint file")
    if not path.is_file():
        raise FileNotFoundError(f"no model named or found at {spec!r}; known models: {', '.join(known) or 'none'}")
    try:
        with open(path, "rb") as handle:
            (size,) = struct.unpack("<Q", handle.read(8))
            header = json.loads(handle.read(size)) if size < 100_000_000 else None
    except (struct.error, ValueError, OSError):
        header = None
    if not isinstance(header, dict):
        raise ValueError(f"{path.name} is not a safetensors file; blastoseg loads only its own .safetensors checkpoints")
    try:
        ok = json.loads((header.get("__metadata__") or {}).get("format", "null")) == "blastoseg-checkpoint-1"
    except (ValueError, AttributeError, TypeError):
        ok = False
    if not ok:
        raise ValueError(f"{path.name} is a safetensors file but not a blastoseg checkpoint")


def plan(tasks: Sequence[Task], options: Options, manifest: Manifest, notice: Notice) -> tuple[list[Task], list[Outcome]]:
    """The tasks to run, each input checked, and the outcomes of those skipped because
    their result is already complete."""
    from blastoseg import __version__

    refuse_collisions(tasks)
    out = Path(options.out_dir)
    todo, skipped, redone = [], [], []
    for task in tasks:
        paths = list(result_paths(out, task.name, task.timelapse).values())
        present = [p for p in paths if p.exists()]
        if task.problem or options.overwrite or len(present) < len(paths):
            todo.append(check(task))
            if present and not options.overwrite and not task.problem:
                redone.append(task.name)
            continue
        before = manifest.rows.get(task.input, {})
        skipped.append(Outcome(task, "done" if before.get("status") == "done" else "skipped", tuple(map(str, paths)),
                               model=before.get("model", ""), model_sha256=before.get("model_sha256", ""),
                               blastoseg_version=before.get("blastoseg_version", __version__),
                               seconds=float(before.get("seconds") or 0)))
    if skipped:
        names = ", ".join(o.task.name for o in skipped[:3]) + (", ..." if len(skipped) > 3 else "")
        notice(f"{len(skipped)} result{'s' * (len(skipped) != 1)} already in {out} ({names}): skipped; --overwrite replaces them")
    if redone:
        notice(f"{len(redone)} incomplete result{'s' * (len(redone) != 1)} (a run stopped while writing) will be redone: "
               + ", ".join(redone[:3]) + (", ..." if len(redone) > 3 else ""))
    _remove_temp_files(out, todo)
    return todo, skipped


def _remove_temp_files(out: Path, todo: Sequence[Task]) -> None:
    """Temp files a killed run left while writing results that are now redone, or the manifest."""
    targets = {p.name for t in todo for p in (*result_paths(out, t.name, t.timelapse).values(), zona_path(out, t.name))}
    targets.add(MANIFEST)
    for entry in out.iterdir():
        match = TEMP.match(entry.name)
        if match and f"{match['stem']}{match['suffix']}" in targets:
            entry.unlink(missing_ok=True)


def run(
    tasks: Sequence[Task],
    options: Options,
    workers: int | None = None,
    scheduler: str | None = None,
    notice: Notice = print,
    report: Notice = print,
) -> Summary:
    """Run the tasks into `options.out_dir`; `report` gets one line per finished task."""
    refuse_collisions(tasks)  # before the output folder is made: a refused run leaves no trace
    out = Path(options.out_dir)
    out.mkdir(parents=True, exist_ok=True)
    manifest = Manifest(out)
    todo, skipped = plan(tasks, options, manifest, notice)
    summary = Summary([], skipped, manifest.path)
    for outcome in skipped:
        if outcome.status == "skipped" or outcome.task.input not in manifest.rows:
            manifest.record(outcome.row())

    def finished(outcome: Outcome, write: Notice = report) -> None:
        summary.outcomes.append(outcome)
        manifest.record(outcome.row())
        write(_line(outcome))

    try:
        runnable = [t for t in todo if not t.problem]
        for task in todo:
            if task.problem:
                finished(run_task(task, options))
        if runnable:
            check_model(options.model)
            if workers is None and scheduler is None:
                _in_process(runnable, options, finished)
            else:
                _on_cluster(runnable, options, workers, scheduler, finished, report)
    finally:
        manifest.compact()
    return summary


def _line(outcome: Outcome) -> str:
    name = outcome.task.name if outcome.task.timelapse else Path(outcome.task.input).name
    if outcome.status == "failed":
        return f"{name}: failed: {outcome.error}"
    frames = f" in {outcome.frames} frames" if outcome.frames > 1 else ""
    return f"{name}: {outcome.cells} cells{frames} -> {Path(outcome.outputs[-1]).name}, {Path(outcome.outputs[-2]).name}"


def _in_process(tasks: Sequence[Task], options: Options, finished: Callable[..., None]) -> None:
    from blastoseg.batch.tasks import loaded_model
    from blastoseg.cli.common import pass_progress

    loaded_model(options.model, options.device)  # a model that cannot load stops the run before any task
    for task in tasks:
        with pass_progress(task.name) as progress:
            outcome = run_task(task, options, progress)
        finished(outcome)


def _on_cluster(tasks: Sequence[Task], options: Options, workers: int | None, scheduler: str | None,
                finished: Callable[[Outcome, Notice], None], report: Notice) -> None:
    from distributed import as_completed
    from tqdm import tqdm

    from blastoseg.batch.cluster import dask_client

    run_id = uuid.uuid4().hex[:8]  # two runs on one scheduler must not share task keys
    with dask_client(workers, scheduler, options.threads or 1) as client:
        futures = {client.submit(run_task, task, options, key=f"blastoseg-{run_id}-{i}", pure=False): task
                   for i, task in enumerate(tasks)}
        with tqdm(total=len(futures), desc="segment", unit="task", file=sys.stderr, dynamic_ncols=True) as bar:
            for future in as_completed(futures):
                try:
                    outcome = future.result()
                except Exception as error:  # the worker died (out of memory, killed): this task alone fails
                    outcome = Outcome(futures[future], "failed", error=one_line(error))
                bar.update(1)
                finished(outcome, lambda line: bar.write(line, file=sys.stdout) if report is print else report(line))
                future.release()
