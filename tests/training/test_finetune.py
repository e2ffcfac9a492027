"""Fine-tuning on a few frames: replay, validation with one or two frames, the parent to beat."""

import json
from pathlib import Path

import numpy as np
import pytest

from blastoseg import synth
from blastoseg.instances import Instances
from blastoseg.model import new_model
from blastoseg.training.finetune import VALIDATION_PER_SIDE, MixedSource, plan
from blastoseg.training.sources import PairSource, SyntheticSource

TINY = {"net_options": {"base": 4, "depth": 2, "full_res": 4}, "offset_scale": 32.0, "working_size": 64}


def _frames(n: int) -> list[tuple[np.ndarray, Instances]]:
    return [(s.image, s.instances) for s in (synth.synth_embryo((64, 64), n_cells=3, seed=i) for i in range(n))]


@pytest.mark.parametrize("n, held", [(1, 0), (2, 0), (3, 1), (10, 2)])
def test_validation_with_one_two_and_more_frames(n: int, held: int) -> None:
    model = new_model("embedseg", TINY)
    frames = _frames(n)
    fine = plan(model, frames)
    assert fine.held_out == held and len(fine.source.pairs) == n - held
    # The user's side and as many replayed synthetic frames, interleaved: user frames at odd
    # places, which `train.in_view` turns into the views other than the upright one.
    assert len(fine.validation) == 2 * max(VALIDATION_PER_SIDE, held)
    user = {id(t) for _, t in frames[n - held:] if held} or {id(t) for _, t in frames}
    assert all(id(truth) in user for _, truth in fine.validation[1::2])
    assert not any(id(truth) in user for _, truth in fine.validation[0::2])
    assert "validated on" in fine.describe()


def test_replay_mixes_the_parents_data_in_its_share() -> None:
    frames = _frames(1)
    mixed = MixedSource(PairSource(frames), SyntheticSource("embryo", 64), share=0.5)
    rng = np.random.default_rng(0)
    drawn = [mixed.draw(rng)[1] is mixed.user.pairs[0][1] for _ in range(200)]
    assert 0.35 < np.mean(drawn) < 0.65
    assert MixedSource(PairSource(frames), None, 0.5).share == 0.0  # nothing to replay: all the user's
    with pytest.raises(ValueError, match="replay share"):
        MixedSource(PairSource(frames), None, 1.0)
    assert plan(new_model("embedseg", TINY), frames, replay=0).source.replay is None


def _write_dataset(folder: Path, frames: list[tuple[np.ndarray, Instances]]) -> Path:
    from blastoseg.training import datasets

    for i, (image, truth) in enumerate(frames):
        datasets.write_item(folder, f"frame{i}", image, truth)
    return folder


def test_a_fine_tune_that_does_not_beat_its_parent_says_so(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    from blastoseg import checkpoint
    from blastoseg.cli import main

    parent = tmp_path / "parent.safetensors"
    checkpoint.save(new_model("embedseg", TINY), parent)
    data = _write_dataset(tmp_path / "data", _frames(2))
    out = tmp_path / "ft.safetensors"
    # A learning rate of 0 leaves the weights as they were: a tie, which is not better.
    assert main(["train", str(data), "--init", str(parent), "--steps", "2", "--validate-every", "1", "--lr", "0",
                 "--batch", "1", "--crop", "64", "--device", "cpu", "-o", str(out)]) == 0
    text = capsys.readouterr().out
    assert "fine-tuning parent on 2 training frame(s), 50% replayed synthetic embryos" in text
    assert "NOT better than its parent" in text and "keep using the parent" in text
    record = checkpoint.read_metadata(out)["training"]
    assert record["beats_parent"] is False and 0 <= record["parent_validation_ap50"] <= 1
    assert record["parent_validation_ap50"] == pytest.approx(record["validation_ap50"], abs=1e-4)


def test_validation_scores_are_in_range_or_absent(tmp_path: Path) -> None:
    from blastoseg.training.augmentation import Augmentation
    from blastoseg.training.train import Budget, TrainOptions, train

    model = new_model("embedseg", TINY)
    options = TrainOptions(Budget(steps=2), batch=1, augmentation=Augmentation(crop=64), validate_every=1, device="cpu")
    events = list(train(model, PairSource(_frames(1)), options, tmp_path / "a.safetensors"))
    assert all(e.best is None and e.validation is None for e in events)  # no validation pairs: no score, never a loss
    assert json.loads(json.dumps(events[-1].as_dict()))["best"] is None
    events = list(train(new_model("embedseg", TINY), PairSource(_frames(1)), options, tmp_path / "b.safetensors",
                        validation=_frames(2)))
    assert all(0 <= e.best <= 1 for e in events if e.best is not None) and events[-1].saved is not None


def test_every_step_after_a_validation_carries_the_best_score(tmp_path: Path) -> None:
    from blastoseg.training.augmentation import Augmentation
    from blastoseg.training.train import Budget, TrainOptions, train

    options = TrainOptions(Budget(steps=4), batch=1, augmentation=Augmentation(crop=64), validate_every=2, device="cpu")
    events = list(train(new_model("embedseg", TINY), PairSource(_frames(1)), options, tmp_path / "m.safetensors",
                        validation=_frames(1)))
    assert events[0].best is None and events[2].validation is None  # step 3 is not validated...
    assert events[2].best == events[1].best is not None  # ...but the progress bar and plot still show the best
