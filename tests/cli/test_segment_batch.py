"""`blastoseg segment` on many inputs: full names, collisions, resuming, overwriting,
corrupt inputs and results given as inputs."""

import os
import signal
import time

import numpy as np
import pytest
import tifffile

from blastoseg import io
from blastoseg.cli import main
from tests.batch.support import (
    EMBRYOSCOPE_NAMES,
    blastoseg,
    frames,
    manifest,
    tiny_model,
)


@pytest.fixture(scope="module")
def model(tmp_path_factory):
    return tiny_model(tmp_path_factory.mktemp("model"))


def segment(*args):
    return main(["segment", *map(str, args), "--no-tta", "--device", "cpu"])


def test_embryoscope_names_give_one_result_each_under_the_full_name(tmp_path, model, one_thread):
    images = frames(tmp_path / "in", EMBRYOSCOPE_NAMES)
    assert segment(*images, "-m", model, "-o", tmp_path / "out") == 0
    amodal = sorted(p.name for p in (tmp_path / "out").glob("*_amodal.tif"))
    assert amodal == sorted(n[: -len(".JPG")] + "_amodal.tif" for n in EMBRYOSCOPE_NAMES)
    for name in EMBRYOSCOPE_NAMES:
        frames_, provenance = io.read_amodal(tmp_path / "out" / (name[:-4] + "_amodal.tif"))
        assert provenance["source"].endswith(name) and frames_[0].shape == (64, 64)
    rows = manifest(tmp_path / "out")
    assert len(rows) == 6 and {r["status"] for r in rows.values()} == {"done"}
    assert {len(r["model_sha256"]) for r in rows.values()} == {64} and all(r["blastoseg_version"] for r in rows.values())


def test_colliding_outputs_are_refused_before_any_work(tmp_path, model, capsys):
    a, b = frames(tmp_path / "a", ["x.tif"])[0], frames(tmp_path / "b", ["x.png"])[0]
    assert segment(a, b, "-m", model, "-o", tmp_path / "out") == 2
    err = capsys.readouterr().err
    assert str(a) in err and str(b) in err and "x_amodal.tif" in err
    assert not (tmp_path / "out").exists()


def test_a_rerun_skips_complete_results_and_overwrite_replaces_them(tmp_path, model, capsys, one_thread):
    images = frames(tmp_path / "in", ["a.tif", "b.tif"])
    out = tmp_path / "out"
    assert segment(*images, "-m", model, "-o", out) == 0
    first = {p.name: p.stat().st_mtime_ns for p in out.glob("*.tif")}
    capsys.readouterr()
    assert segment(*images, "-m", model, "-o", out) == 0
    captured = capsys.readouterr()
    assert "2 results already in" in captured.err and "--overwrite" in captured.err
    assert "0 done, 2 skipped, 0 failed" in captured.out
    assert {p.name: p.stat().st_mtime_ns for p in out.glob("*.tif")} == first
    assert {r["status"] for r in manifest(out).values()} == {"done"}  # done by the first run, still true

    time.sleep(0.01)
    assert segment(*images, "-m", model, "-o", out, "--overwrite") == 0
    assert "2 done, 0 skipped" in capsys.readouterr().out
    again = {p.name: p.stat().st_mtime_ns for p in out.glob("*.tif")}
    assert again.keys() == first.keys() and all(again[k] > first[k] for k in first)


def test_an_incomplete_result_is_redone(tmp_path, model, capsys, one_thread):
    (image,) = frames(tmp_path / "in", ["a.tif"])
    out = tmp_path / "out"
    assert segment(image, "-m", model, "-o", out) == 0
    (out / "a_amodal.tif").unlink()  # as if killed between the visible and the amodal file
    (out / ".a_amodal.0123456789ab.tmp.tif").write_bytes(b"half a file")
    assert segment(image, "-m", model, "-o", out) == 0
    assert "incomplete result" in capsys.readouterr().err
    assert io.read_amodal(out / "a_amodal.tif")[0][0].shape == (64, 64)
    assert not list(out.glob(".*tmp*"))


def test_a_corrupt_input_fails_alone_and_results_given_as_inputs_are_skipped(tmp_path, model, capsys, one_thread):
    good = frames(tmp_path / "in", ["a.tif", "b.jpg", "c.png"])
    (tmp_path / "in" / "broken.tif").write_bytes(b"II*\x00 this is no tiff")
    (tmp_path / "in" / "cut.png").write_bytes((tmp_path / "in" / "c.png").read_bytes()[:60])
    out = tmp_path / "out"
    assert segment(tmp_path / "in", "-m", model, "-o", out) == 1
    assert "3 done, 0 skipped, 2 failed" in capsys.readouterr().out
    rows = manifest(out)
    assert {r["name"]: r["status"] for r in rows.values()} == {"a": "done", "b": "done", "c": "done", "broken": "failed", "cut": "failed"}
    assert "broken.tif" in rows[str(tmp_path / "in" / "broken.tif")]["error"]
    # the results folder given back as input: its result files are skipped, the rest is done
    code = segment(tmp_path / "in", *sorted(out.glob("*.tif")), "-m", model, "-o", out)
    captured = capsys.readouterr()
    assert code == 1 and "is a blastoseg result, not an image: skipped" in captured.err
    assert "0 done, 3 skipped, 2 failed" in captured.out and "broken.tif" in captured.err
    assert sorted(p.name for p in out.glob("*_amodal.tif")) == sorted(p.name.split(".")[0] + "_amodal.tif" for p in good)


def test_the_exit_code_says_an_input_failed(tmp_path, model, capsys, one_thread):
    frames(tmp_path / "in", ["a.tif"])
    (tmp_path / "in" / "broken.jpg").write_bytes(b"\xff\xd8\xff not a jpeg")
    assert segment(tmp_path / "in", "-m", model, "-o", tmp_path / "out") == 1
    captured = capsys.readouterr()
    assert "1 done, 0 skipped, 1 failed" in captured.out and "broken.jpg" in captured.err
    assert (tmp_path / "out" / "a_amodal.tif").is_file()


def test_a_killed_run_leaves_complete_files_and_a_rerun_finishes(tmp_path, model):
    images = frames(tmp_path / "in", [f"frame_{k:02d}.tif" for k in range(20)], side=256)
    out = tmp_path / "out"
    args = ("segment", str(tmp_path / "in"), "-m", str(model), "--no-tta", "--device", "cpu", "--threads", "1", "-o", str(out))
    child = blastoseg(*args, stdout=open(os.devnull, "w"), stderr=open(os.devnull, "w"))
    deadline, done = time.monotonic() + 120, 0
    while time.monotonic() < deadline and child.poll() is None:
        done = sum(r["status"] == "done" for r in manifest(out).values()) if (out / "manifest.csv").exists() else 0
        if done >= 4:
            os.kill(child.pid, signal.SIGKILL)
            break
        time.sleep(0.005)
    child.wait()
    assert child.returncode == -signal.SIGKILL, "the run ended before it could be killed halfway"
    assert 4 <= len(list(out.glob("*_amodal.tif"))) < 20
    for path in out.glob("*_amodal.tif"):  # what a killed run leaves is whole
        assert io.read_amodal(path)[0][0].shape == (256, 256)
    for path in out.glob("*_visible.tif"):
        assert tifffile.imread(path).shape == (256, 256)

    again = blastoseg(*args, stdout=open(os.devnull, "w"), stderr=open(os.devnull, "w"))
    assert again.wait(timeout=300) == 0
    rows = manifest(out)
    assert len(rows) == 20 and {r["status"] for r in rows.values()} == {"done"}
    for image in images:
        stem = image.name[: -len(".tif")]
        assert io.read_amodal(out / f"{stem}_amodal.tif")[0][0].shape == (256, 256)
        assert np.asarray(tifffile.imread(out / f"{stem}_visible.tif")).shape == (256, 256)
        assert f"{stem}_amodal.tif" in rows[str(image)]["outputs"]
    assert not [p.name for p in out.iterdir() if ".tmp" in p.name]
