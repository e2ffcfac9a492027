"""A process loads a model once; a task's failure is returned, not raised."""

from pathlib import Path

from blastoseg.batch import tasks
from blastoseg.batch.inputs import Task
from tests.batch.support import tiny_model


def test_a_model_is_loaded_once_per_process(tmp_path):
    path = str(tiny_model(tmp_path))
    first = tasks.loaded_model(path, "cpu")
    assert tasks.loaded_model(path, "cpu") is first


def test_a_failing_task_is_an_outcome_with_a_one_line_error(tmp_path):
    (tmp_path / "x.tif").write_bytes(b"II*\x00 not a tiff")
    options = tasks.Options(str(tiny_model(tmp_path)), str(tmp_path), tta=False, device="cpu", threads=1)
    outcome = tasks.run_task(Task(str(tmp_path / "x.tif"), "x", (str(tmp_path / "x.tif"),)), options)
    assert outcome.status == "failed" and "cannot read" in outcome.error and "\n" not in outcome.error
    assert outcome.model == "tiny" and len(outcome.model_sha256) == 64
    assert not list(Path(tmp_path).glob("x_*"))


def test_dask_s_malloc_setting_is_undone_once(monkeypatch):
    monkeypatch.setenv("MALLOC_TRIM_THRESHOLD_", "65536")
    monkeypatch.setattr(tasks, "_MALLOC_TUNED", False)
    tasks.set_threads(None)  # outside a worker: threads stay as they are, malloc is tuned
    assert tasks._MALLOC_TUNED
