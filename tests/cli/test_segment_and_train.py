"""`blastoseg train` and `blastoseg segment` end to end with a tiny model."""

import json

import numpy as np
import tifffile

from blastoseg import io
from blastoseg.cli import main

TINY = json.dumps({"net_options": {"base": 4, "depth": 2, "full_res": 4}, "offset_scale": 32.0})


def test_train_then_segment_a_frame_and_a_stack(tmp_path, capsys, monkeypatch):
    model = tmp_path / "tiny.safetensors"
    code = main(["train", "synthetic:embryo", "--steps", "3", "--batch", "2", "--crop", "64",
                 "--validate-every", "3", "--config", TINY, "--device", "cpu", "-o", str(model)])
    assert code == 0 and model.exists()
    said = capsys.readouterr()
    assert "saved" in said.out
    assert "step=3" in said.err and "%/s" not in said.err and "s/%" not in said.err  # steps, not a rate of percent
    from blastoseg.checkpoint import read_metadata

    assert set(read_metadata(model)["pipeline"]["object_diameters"]) == {"median", "range"}

    frame = (np.random.default_rng(0).random((48, 40)) * 255).astype(np.uint8)
    tifffile.imwrite(tmp_path / "frame.tif", frame)
    tifffile.imwrite(tmp_path / "stack.tif", np.stack([frame, frame, frame]))
    out = tmp_path / "out"
    code = main(["segment", str(tmp_path / "frame.tif"), str(tmp_path / "stack.tif"), "-m", str(model),
                 "--no-tta", "--no-rescale", "--device", "cpu", "-o", str(out)])
    assert code == 0
    frames, provenance = io.read_amodal(out / "frame_amodal.tif")
    assert len(frames) == 1 and frames[0].shape == (48, 40)
    assert provenance["method"] == "embedseg" and len(provenance["model_sha256"]) == 64
    stack_frames, _ = io.read_amodal(out / "stack_amodal.tif")
    assert len(stack_frames) == 3
    assert tifffile.imread(out / "stack_visible.tif").shape == (3, 48, 40)

    import blastoseg.inference.predict

    asked, real = [], blastoseg.inference.predict.analyse_frames
    monkeypatch.setattr(blastoseg.inference.predict, "analyse_frames", lambda *a, **k: asked.append(k["auto_scale"]) or real(*a, **k))
    for k, flags in enumerate(([], ["--no-rescale"])):  # separate folders: an existing result would be skipped
        assert main(["segment", str(tmp_path / "frame.tif"), "-m", str(model), "--no-tta", *flags, "-o", str(tmp_path / f"o{k}")]) == 0
    assert asked == [True, False]


def test_fine_tuning_keeps_the_config_and_records_its_parent_not_its_scores(tmp_path):
    model = tmp_path / "a.safetensors"
    assert main(["train", "synthetic:embryo", "--steps", "1", "--batch", "1", "--crop", "64", "--config", TINY,
                 "--device", "cpu", "-o", str(model)]) == 0
    from blastoseg import catalogue, checkpoint

    # the parent as a benchmark leaves it: scored, tuned, dated
    parent = checkpoint.load(model, device="cpu")
    parent.config["seed_threshold"] = 0.123
    checkpoint.save(parent, model, scores={"mAP": 0.5}, tuning={"images": 50}, date="2000-01-01T00:00:00+00:00")
    tuned = tmp_path / "b.safetensors"
    assert main(["train", "synthetic:embryo", "--steps", "1", "--batch", "1", "--crop", "64", "--init", str(model),
                 "--ema", "0.9", "--device", "cpu", "-o", str(tuned)]) == 0
    meta = checkpoint.read_metadata(tuned)
    assert meta["config"]["net_options"]["base"] == 4 and meta["config"]["seed_threshold"] == 0.123
    assert meta["training"]["ema_decay"] == 0.9
    # the parent's scores, tuning and date describe the parent, not the fine-tuned model
    assert "scores" not in meta and "tuning" not in meta and not meta["date"].startswith("2000")
    assert meta["parent"] == {"name": "a", "sha256": catalogue.file_sha256(model)}


def test_bad_inputs_exit_2_with_a_message(tmp_path, capsys):
    assert main(["segment", str(tmp_path / "missing.tif"), "-o", str(tmp_path)]) == 2
    assert "no image file" in capsys.readouterr().err
    tifffile.imwrite(tmp_path / "x.tif", np.zeros((32, 32), np.uint8))
    fake = tmp_path / "fake.safetensors"
    fake.write_bytes(b"\x80\x04garbage")
    assert main(["segment", str(tmp_path / "x.tif"), "-m", str(fake), "-o", str(tmp_path / "o")]) == 2
    assert "not a safetensors file" in capsys.readouterr().err
    assert main(["train", "synthetic:embryo", "--steps", "1", "--config", "{oops", "-o", str(tmp_path / "m.safetensors")]) == 2
    assert "JSON" in capsys.readouterr().err


def test_a_model_that_localises_embryos_writes_the_zona_and_measures_it(tmp_path, capsys):
    import pandas as pd

    from blastoseg import checkpoint
    from blastoseg.model import new_model
    from blastoseg.synth import synth_embryo

    model = checkpoint.save(new_model("embedseg", {"net_options": {"base": 4, "depth": 2, "full_res": 4}, "localise_embryo": True}),
                            tmp_path / "m.safetensors")
    io.write_image(tmp_path / "embryo.tif", synth_embryo((256, 256), seed=3).image.astype(np.float32))
    assert main(["segment", str(tmp_path / "embryo.tif"), "-m", str(model), "--no-tta", "--device", "cpu", "-o", str(tmp_path / "out")]) == 0
    zona = tifffile.imread(tmp_path / "out" / "embryo_zona.tif")
    assert zona.shape == (256, 256) and set(np.unique(zona)) == {0, 1, 2}
    (embryo,) = io.read_embryos(tmp_path / "out" / "embryo_amodal.tif")
    assert 20 < embryo["inner_radius"] < embryo["outer_radius"] < 200
    assert main(["measure", str(tmp_path / "out" / "embryo_amodal.tif"), "--pixel-size", "0.5", "-o", str(tmp_path / "m.csv")]) == 0
    frames = pd.read_csv(tmp_path / "m_frames.csv")
    assert frames["zona_outer_diameter_px"][0] == round(2 * embryo["outer_radius"], 2)
    assert frames["zona_thickness_um"][0] == round(0.5 * (embryo["outer_radius"] - embryo["inner_radius"]), 2)
