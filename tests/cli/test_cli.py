"""The `blastoseg` command line: synth, evaluate, info, demo and error handling."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest
import tifffile

from blastoseg import __version__, io
from blastoseg.cli import main
from blastoseg.instances import Instances


@pytest.fixture(scope="module")
def datasets(tmp_path_factory):
    """The same three synthetic embryos, once with amodal and once with visible masks."""
    root = tmp_path_factory.mktemp("synth")
    assert main(["synth", str(root / "amodal"), "--kind", "embryo", "--n", "3", "--seed", "1", "--size", "128"]) == 0
    assert main(["synth", str(root / "visible"), "--kind", "embryo", "--n", "3", "--seed", "1", "--size", "128", "--visible"]) == 0
    return root


def _evaluate(capsys, *args: str) -> dict:
    capsys.readouterr()
    assert main(["evaluate", *args]) == 0
    return json.loads(capsys.readouterr().out)


def test_synth_writes_a_dataset(datasets):
    names = sorted(p.name for p in (datasets / "amodal" / "images").iterdir())
    assert names == ["embryo_0000.tif", "embryo_0001.tif", "embryo_0002.tif"]
    amodal = tifffile.imread(datasets / "amodal" / "masks" / "embryo_0000.tif")
    visible = tifffile.imread(datasets / "visible" / "masks" / "embryo_0000.tif")
    assert amodal.ndim == 3 and visible.ndim == 2 and visible.shape == (128, 128)
    same_image = [tifffile.imread(datasets / k / "images" / "embryo_0001.tif") for k in ("amodal", "visible")]
    assert np.array_equal(*same_image)  # same seed, same images


def test_ground_truth_against_itself_is_perfect(datasets, capsys):
    result = _evaluate(capsys, str(datasets / "amodal"), str(datasets / "amodal"))
    assert result["mAP"] == 1.0 and result["n_images"] == 3 and result["n_gt"] == result["n_pred"] > 0


def test_visible_masks_are_not_amodal(datasets, capsys):
    result = _evaluate(capsys, str(datasets / "visible"), str(datasets / "amodal"))
    assert result["mAP"] < 1.0


def test_missing_prediction_counts_as_empty(datasets, tmp_path, capsys):
    full = _evaluate(capsys, str(datasets / "amodal"), str(datasets / "amodal"))
    for name in ("embryo_0000", "embryo_0002"):
        frames, _ = io.read_amodal(datasets / "amodal" / "masks" / f"{name}.tif")
        io.write_amodal(tmp_path / f"{name}_amodal.tif", frames[0])
    capsys.readouterr()
    assert main(["evaluate", str(tmp_path), str(datasets / "amodal")]) == 0
    captured = capsys.readouterr()
    result = json.loads(captured.out)
    assert "embryo_0001" in captured.err and "count as empty" in captured.err
    # image 1 has no prediction: mean over images of (1, 0, 1)
    assert result["mAP"] == pytest.approx(2 / 3)
    assert result["n_gt"] == full["n_gt"] and result["n_pred"] < full["n_pred"]


def test_score_threshold_drops_weak_predictions(datasets, tmp_path, capsys):
    frames, _ = io.read_amodal(datasets / "amodal" / "masks" / "embryo_0000.tif")
    weak = frames[0].with_scores(np.full(len(frames[0]), 0.2, np.float32))
    io.write_amodal(tmp_path / "embryo_0000.tif", weak)
    gt = tmp_path / "gt"
    gt.mkdir()
    io.write_amodal(gt / "embryo_0000.tif", frames[0])
    assert _evaluate(capsys, str(tmp_path), str(gt), "--threshold", "0.1")["mAP"] == 1.0
    result = _evaluate(capsys, str(tmp_path), str(gt), "--threshold", "0.5")
    assert result["n_pred"] == 0 and result["mAP"] == 0.0


def test_bad_input_exits_2_with_one_line(tmp_path, capsys):
    missing = tmp_path / "no_such_folder"
    assert main(["evaluate", str(missing), str(missing)]) == 2
    err = capsys.readouterr().err
    assert "no_such_folder" in err and "Traceback" not in err and len(err.strip().splitlines()) == 1
    assert main(["synth", str(tmp_path / "x"), "--n", "0"]) == 2
    assert "--n must be at least 1" in capsys.readouterr().err
    (tmp_path / "empty").mkdir()
    assert main(["evaluate", str(tmp_path / "empty"), str(tmp_path / "empty")]) == 2
    assert "no .tif label files" in capsys.readouterr().err
    assert main(["evaluate", str(tmp_path), str(tmp_path), "--threshold", "1.5"]) == 2


def test_usage_errors_and_help_return_codes(capsys):
    assert main(["synth"]) == 2  # missing OUT: argparse usage error
    assert main(["--help"]) == 0
    assert "synth" in capsys.readouterr().out


def test_help_does_not_import_torch():
    code = "import sys; from blastoseg.cli import main; main(['--help']); sys.exit('torch' in sys.modules)"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert "evaluate" in done.stdout


def test_info(capsys, monkeypatch, tmp_path):
    monkeypatch.setattr("platformdirs.user_data_dir", lambda *a, **k: str(tmp_path))
    (tmp_path / "models").mkdir()
    (tmp_path / "models" / "mine.safetensors").write_bytes(b"")
    assert main(["info"]) == 0
    out = capsys.readouterr().out
    assert f"blastoseg {__version__}" in out and "torch" in out and "CUDA" in out
    assert "mine.safetensors" in out


def test_demo_segments_the_sample_and_writes_layers_and_csv(tmp_path, capsys):
    from blastoseg import catalogue, checkpoint
    from blastoseg.model import new_model

    model = checkpoint.save(new_model("embedseg", {"net_options": {"base": 4, "depth": 2, "full_res": 4}}),
                            tmp_path / "tiny.safetensors")
    out = tmp_path / "demo"
    assert main(["demo", "-o", str(out), "-m", str(model), "--device", "cpu"]) == 0
    printed = capsys.readouterr().out
    assert str(out / "sample_embryo_gt_amodal.tif") in printed and "mAP" in printed
    image = io.read_image(out / "sample_embryo.tif")
    (amodal,), provenance = io.read_amodal(out / "sample_embryo_gt_amodal.tif")
    visible = tifffile.imread(out / "sample_embryo_gt_visible.tif")
    assert isinstance(amodal, Instances) and len(amodal) > 1 and image.shape == amodal.shape
    assert np.array_equal(visible, amodal.visible_labels())
    assert provenance["blastoseg_version"] == __version__
    (found,), provenance = io.read_amodal(out / "sample_embryo_amodal.tif")
    assert provenance["model_sha256"] == catalogue.file_sha256(model)
    assert (out / "sample_embryo_cells.csv").exists() and (out / "sample_embryo_frames.csv").exists()


def test_measure_command_matches_the_ground_truth_areas(tmp_path, capsys):
    import pandas as pd

    from blastoseg import synth

    sample = synth.synth_embryo((128, 128), n_cells=4, seed=3)
    result = io.write_amodal(tmp_path / "e_amodal.tif", sample.instances, {"method": "truth"})
    assert main(["measure", str(result), "-o", str(tmp_path / "table.csv"), "--pixel-size", "0.5"]) == 0
    cells = pd.read_csv(tmp_path / "table_cells.csv")
    assert sorted(cells["area_px"]) == sorted(sample.instances.areas().tolist())
    assert np.allclose(sorted(cells["area_um2"]), sorted(sample.instances.areas() * 0.25))
    assert main(["measure", str(tmp_path / "nope_amodal.tif"), "-o", str(tmp_path / "t.csv")]) == 2


def test_info_lists_every_model_and_names_the_unreadable_ones(capsys, monkeypatch, tmp_path):
    from blastoseg import checkpoint
    from blastoseg.model import new_model

    monkeypatch.setattr("platformdirs.user_data_dir", lambda *a, **k: str(tmp_path))
    models = tmp_path / "models"
    models.mkdir()
    checkpoint.save(new_model("embedseg", {"net_options": {"base": 4, "depth": 2, "full_res": 4}}), models / "good.safetensors")
    (models / "junk.safetensors").write_bytes(b"\x00" * 40)
    (models / "x.safetensors").mkdir()
    assert main(["info"]) == 0
    captured = capsys.readouterr()
    lines = {line.split()[0]: line for line in captured.out.splitlines() if line.startswith("  ")}
    assert "embedseg" in lines["good"] and "unreadable" not in lines["good"]
    assert "unreadable" in lines["junk"] and "is a folder" in lines["x"]
    assert "2 of the models above cannot be read" in captured.err and "Traceback" not in captured.err


def test_synth_never_writes_over_existing_images(datasets, capsys):
    folder = datasets / "amodal"
    before = {p: p.read_bytes() for p in folder.rglob("*.tif")}
    assert main(["synth", str(folder), "--n", "2", "--seed", "5", "--size", "128"]) == 2
    assert "already holds images/embryo_0000.tif and 3 more" in capsys.readouterr().err
    assert {p: p.read_bytes() for p in folder.rglob("*.tif")} == before
    assert main(["synth", str(folder), "--size", "100000"]) == 2  # refused before a pixel is drawn
    assert "over the limit" in capsys.readouterr().err


def test_evaluate_without_a_single_matching_name_is_an_error(datasets, tmp_path, capsys):
    frames, _ = io.read_amodal(datasets / "amodal" / "masks" / "embryo_0000.tif")
    io.write_amodal(tmp_path / "other_amodal.tif", frames[0])
    assert main(["evaluate", str(tmp_path), str(datasets / "amodal")]) == 2
    err = capsys.readouterr().err
    assert "no prediction" in err and "'other'" in err and "'embryo_0000'" in err
