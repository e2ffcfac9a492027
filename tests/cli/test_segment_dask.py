"""`blastoseg segment --workers / --scheduler`: the same results as the in-process loop."""

import os

import numpy as np
import pytest
import tifffile

from blastoseg import io
from blastoseg.cli import main
from tests.batch.support import manifest


@pytest.fixture(scope="module")
def inputs(tmp_path_factory):
    """Three synthetic embryos and a broken file; the shipped EmbedSeg model finds cells
    in them, so equal results are not merely equally empty."""
    from blastoseg.synth import synth_embryo

    folder = tmp_path_factory.mktemp("dask")
    (folder / "in").mkdir()
    for k, name in enumerate(["a.tif", "b.2024.01.02.png", "c.jpg"]):
        io.write_image(folder / "in" / name, (synth_embryo((96, 96), seed=k).image * 255).astype(np.uint8))
    (folder / "in" / "broken.tif").write_bytes(b"II*\x00 not a tiff")
    return "embedseg", folder / "in", folder


def _segment(model, images, out, *extra):
    return main(["segment", str(images), "-m", str(model), "--no-tta", "--device", "cpu", "-o", str(out), *extra])


def _same_results(a, b):
    names = sorted(p.name for p in a.glob("*.tif"))
    assert names == sorted(p.name for p in b.glob("*.tif")) and len(names) == 6
    for name in names:
        if name.endswith("_amodal.tif"):
            (x,), _ = io.read_amodal(a / name)
            (y,), _ = io.read_amodal(b / name)
            assert len(x) > 0 and np.array_equal(x.boxes, y.boxes) and np.array_equal(x.scores, y.scores)
            assert all(np.array_equal(m, n) for m, n in zip(x.masks, y.masks))
        else:
            assert np.array_equal(tifffile.imread(a / name), tifffile.imread(b / name))


def test_a_local_cluster_writes_what_the_in_process_loop_writes(inputs, one_thread, capsys):
    model, images, folder = inputs
    assert _segment(model, images, folder / "plain", "--threads", "1") == 1  # broken.tif fails alone
    assert _segment(model, images, folder / "dask", "--workers", "2", "--threads", "1") == 1
    assert "MALLOC_TRIM_THRESHOLD_" not in os.environ  # our LocalCluster does not set it (tasks._undo_malloc_trim)
    assert "3 done, 0 skipped, 1 failed" in capsys.readouterr().out
    _same_results(folder / "plain", folder / "dask")
    rows = manifest(folder / "dask")
    assert {r["name"]: r["status"] for r in rows.values()} == {"a": "done", "b.2024.01.02": "done", "c": "done", "broken": "failed"}
    assert len({r["model_sha256"] for r in rows.values() if r["status"] == "done"}) == 1


@pytest.fixture
def environ():
    """Dask's nannies write their variables (MALLOC_TRIM_THRESHOLD_, ...) into the starting
    process's environment; later tests get it back as it was."""
    import os

    before = dict(os.environ)
    yield
    os.environ.clear()
    os.environ.update(before)


def test_an_existing_scheduler_takes_the_tasks(inputs, one_thread, capsys, environ):
    from distributed import Client, LocalCluster

    model, images, folder = inputs
    if not (folder / "plain").exists():
        assert _segment(model, images, folder / "plain", "--threads", "1") == 1
    with LocalCluster(n_workers=1, threads_per_worker=1, processes=True, dashboard_address=None) as cluster:
        assert _segment(model, images, folder / "remote", "--scheduler", cluster.scheduler_address, "--threads", "1") == 1
        assert "3 done" in capsys.readouterr().out
        _same_results(folder / "plain", folder / "remote")
        with Client(cluster) as client:  # the worker loaded the model once and used the threads asked for
            assert list(client.run(_worker_state).values()) == [(1, 1)]
        # a rerun on the cluster resumes: nothing left to do but the broken input
        assert _segment(model, images, folder / "remote", "--scheduler", cluster.scheduler_address) == 1
        assert "0 done, 3 skipped, 1 failed" in capsys.readouterr().out


def _worker_state():
    import torch

    from blastoseg.batch import tasks

    return len(tasks._MODELS), torch.get_num_threads()


def test_bad_cluster_options_are_one_line_errors(inputs, capsys):
    model, images, folder = inputs
    assert _segment(model, images, folder / "x", "--workers", "2", "--scheduler", "tcp://127.0.0.1:1") == 2
    assert "not both" in capsys.readouterr().err
    assert _segment(model, images, folder / "x", "--workers", "0") == 2
    assert "--workers must be at least 1" in capsys.readouterr().err
    fake = folder / "fake.safetensors"
    fake.write_bytes(b"\x08\x00\x00\x00\x00\x00\x00\x00{}      ")
    # refused before a cluster starts: each worker would otherwise fail every task alone
    assert _segment(fake, images, folder / "x", "--workers", "2") == 2
    assert "not a blastoseg checkpoint" in capsys.readouterr().err
