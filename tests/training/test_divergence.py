"""Training never destroys a model: divergence stops it, resuming never saves a worse one."""

from __future__ import annotations

import json

import numpy as np
import pytest

from blastoseg import checkpoint
from blastoseg.cli import main
from blastoseg.instances import Instances
from blastoseg.model import new_model
from blastoseg.training import train as training
from blastoseg.training.augmentation import Augmentation
from blastoseg.training.divergence import TrainingDiverged
from blastoseg.training.sources import PairSource
from blastoseg.training.train import Budget, TrainOptions, train

TINY = {"net_options": {"base": 4, "depth": 2, "full_res": 4}}


def _pairs(n: int = 1) -> list:
    labels = np.zeros((32, 32), np.int32)
    labels[4:14, 4:14], labels[18:28, 16:26] = 1, 2
    return [((labels > 0).astype(np.float32), Instances.from_label_image(labels))] * n


def _options(steps: int, **kwargs) -> TrainOptions:
    return TrainOptions(Budget(steps=steps), **{"batch": 1, "augmentation": Augmentation(crop=32), "validate_every": 1,
                                                "device": "cpu", **kwargs})


def test_a_diverging_run_stops_with_the_step_and_cause_and_saves_nothing(tmp_path, one_thread):
    output = tmp_path / "m.safetensors"
    with pytest.raises(TrainingDiverged, match=r"stopped at step \d+: .*learning rate \(1e\+08\).*No model was written"):
        for _ in train(new_model("embedseg", TINY), PairSource(_pairs()), _options(6, lr=1e8, validate_every=4), output):
            pass
    assert not output.exists() and list(tmp_path.iterdir()) == []
    # Saved before it diverged: that checkpoint stays, and the message says so.
    with pytest.raises(TrainingDiverged, match=r"The model saved at step 1 is kept in .*m.safetensors"):
        for _ in train(new_model("embedseg", TINY), PairSource(_pairs()), _options(6, lr=1e8), output):
            pass
    checkpoint.load(output, "cpu")


def test_a_diverging_resume_leaves_the_checkpoint_as_it_was(tmp_path, one_thread):
    output = checkpoint.save(new_model("embedseg", TINY), tmp_path / "m.safetensors")
    before = output.read_bytes()
    with pytest.raises(TrainingDiverged, match="m.safetensors is left as it was"):
        for _ in train(checkpoint.load(output, "cpu"), PairSource(_pairs()), _options(6, lr=1e8, keep_better=True),
                       output, validation=_pairs()):
            pass
    assert output.read_bytes() == before


def test_resuming_saves_only_a_model_that_validates_better(tmp_path, monkeypatch, one_thread):
    output = checkpoint.save(new_model("embedseg", TINY), tmp_path / "m.safetensors")
    before = output.read_bytes()
    scores = iter([0.5, 0.3, 0.5, 0.6, 0.6])  # the starting weights, then steps 1-4
    monkeypatch.setattr(training, "validate", lambda *args: next(scores))
    events = list(train(checkpoint.load(output, "cpu"), PairSource(_pairs()), _options(4, keep_better=True), output,
                        validation=_pairs()))
    assert [e.saved is not None for e in events] == [False, False, True, True]  # equal to the start is not better
    assert output.read_bytes() != before and checkpoint.read_metadata(output)["training"]["validation_ap50"] == 0.6


def test_training_options_are_checked():
    for kwargs, text in [({"batch": 0}, "batch size"), ({"lr": float("nan")}, "learning rate"), ({"lr": -1.0}, "learning rate"),
                         ({"validate_every": 0}, "validate every"), ({"ema_decay": 1.0}, "between 0 and 1"),
                         ({"augmentation": Augmentation(crop=0)}, "at least 16"),
                         ({"augmentation": Augmentation(crop=100000)}, "BLASTOSEG_MAX_PIXELS")]:
        with pytest.raises(ValueError, match=text):
            TrainOptions(Budget(steps=1), **kwargs)
    for budget in ({"steps": 0}, {"minutes": float("nan")}, {"minutes": float("inf")}, {"minutes": -1}):
        with pytest.raises(ValueError, match="budget must be positive"):
            Budget(**budget)


def test_a_crop_the_network_cannot_take_is_refused(tmp_path):
    model = new_model("embedseg", {"net_options": {"base": 4, "depth": 3, "full_res": 4}})  # sides: multiples of 8
    with pytest.raises(ValueError, match="multiple of 8"):
        next(train(model, PairSource(_pairs()), _options(1, augmentation=Augmentation(crop=36)), tmp_path / "m.safetensors"))


def test_an_infinite_pixel_in_a_training_image_trains_a_finite_model(tmp_path, capsys, one_thread):
    from blastoseg import io
    from blastoseg.training import datasets

    (image, truth), = _pairs()
    for i in range(2):
        datasets.write_item(tmp_path / "ds", f"a{i}", image * 200, truth)
    poisoned = image * 200
    poisoned[3, 3], poisoned[5, 5] = np.inf, np.nan
    io.write_image(tmp_path / "ds" / "images" / "a1.tif", poisoned)
    output = tmp_path / "m.safetensors"
    code = main(["train", str(tmp_path / "ds"), "--steps", "2", "--batch", "1", "--crop", "32", "--config", json.dumps(TINY),
                 "--device", "cpu", "-o", str(output)])
    captured = capsys.readouterr()
    assert code == 0, captured.err
    assert "2 of 1024 pixels are NaN or infinite" in captured.err
    checkpoint.load(output, "cpu")  # finite weights, or loading would refuse them


def test_train_never_replaces_an_existing_model_unasked(tmp_path, capsys, one_thread):
    output = checkpoint.save(new_model("embedseg", TINY), tmp_path / "m.safetensors")
    before = output.read_bytes()
    common = ["train", "synthetic:embryo", "--steps", "1", "--batch", "1", "--crop", "32", "--device", "cpu"]
    assert main([*common, "-o", str(output)]) == 2
    assert "exists; pass --resume to continue training it, --overwrite to replace it" in capsys.readouterr().err
    assert main([*common, "--resume", "--init", "embedseg", "-o", str(output)]) == 2
    assert "drop --init" in capsys.readouterr().err
    assert main([*common, "--resume", "-o", str(tmp_path / "absent.safetensors")]) == 2
    assert "needs an existing checkpoint" in capsys.readouterr().err
    (tmp_path / "dir.safetensors").mkdir()
    assert main([*common, "-o", str(tmp_path / "dir.safetensors")]) == 2
    assert "is a folder" in capsys.readouterr().err
    assert output.read_bytes() == before
    assert main([*common, "--config", json.dumps(TINY), "--overwrite", "-o", str(output)]) == 0
    assert output.read_bytes() != before
