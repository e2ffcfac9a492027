"""FCRNet: power normalisation, the permutation-invariant colouring loss, post-processing, TTA."""

import numpy as np
import pytest
import torch

from blastoseg import d4
from blastoseg.checkpoint import load
from blastoseg.inference.predict import merge_views
from blastoseg.instances import Instances
from blastoseg.methods import get_method
from blastoseg.methods.fcrnet import (
    adjacency,
    alpha_at,
    colour_maps,
    colouring_order,
    greedy_colouring,
    permuted,
    power_normalise,
    separation_weights,
)
from blastoseg.model import new_model

METHOD = get_method("fcrnet")
CONFIG = METHOD.default_config()


def _inverse_softplus(e: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(np.log(np.expm1(np.asarray(e, np.float64)))).float()


def _raw_for(colour: np.ndarray, k: int = 4) -> torch.Tensor:
    """Raw outputs whose colours are one-hot in `colour` (e = 1 for the winner, 1e-3 elsewhere)."""
    e = np.where(np.eye(k)[colour] > 0, 1.0, 1e-3).transpose(2, 0, 1)
    return _inverse_softplus(e)[None]


def _scene() -> np.ndarray:
    """A, B touching (labels 1, 2); C (3) far from both; background around."""
    labels = np.zeros((40, 40), np.int64)
    labels[4:14, 4:14] = 1
    labels[4:14, 14:24] = 2
    labels[26:36, 26:36] = 3
    return labels


def _loss(labels: np.ndarray, colour: np.ndarray) -> dict[str, float]:
    truth = Instances.from_label_image(labels)
    batch = METHOD.collate([METHOD.targets(truth, CONFIG)])
    out = METHOD.loss(_raw_for(colour), batch, {**CONFIG, "train_alpha": 8.0})
    return {k: float(v) for k, v in out.items()}


def test_power_normalisation_sums_to_one_and_sharpens():
    raw = _inverse_softplus([1.0, 2.0, 3.0, 4.0])[None, :, None, None]
    h2 = power_normalise(raw, 2.0)[0, :, 0, 0]
    assert torch.allclose(h2, torch.tensor([1.0, 4.0, 9.0, 16.0]) / 30, atol=1e-5)
    h8 = power_normalise(raw, 8.0)[0, :, 0, 0]
    assert np.isclose(float(h8.sum()), 1.0)
    assert float(h8[3]) > 0.9 > float(h2[3])
    assert int(h8.argmax()) == int(h2.argmax()) == 3


def test_alpha_schedule_stages_and_progress_hook():
    assert [alpha_at(CONFIG, f) for f in (0.0, 0.19, 0.2, 0.5, 0.99, 1.0)] == [2, 2, 2, 4, 8, 8]
    updated = METHOD.on_progress(CONFIG, 0.65)
    assert updated["train_alpha"] == 6.0 and "train_alpha" not in CONFIG


def test_adjacency_within_radius_and_targets():
    labels = np.zeros((20, 30), np.int64)
    labels[2:8, 2:8] = 1
    labels[2:8, 10:16] = 2  # gap of 2 pixels from 1
    labels[14:18, 24:28] = 3  # far from both
    assert adjacency(labels, 1).tolist() == []
    assert adjacency(labels, 3).tolist() == [[1, 2]]
    t = METHOD.targets(Instances.from_label_image(labels), {**CONFIG, "adjacency_min": 3})
    assert t["pairs"].tolist() == [[0, 1], [0, 2], [0, 3], [1, 2]]
    assert int(t["groups"]) == 4 and np.array_equal(t["labels"], labels)


def test_separation_weights_only_on_background_between_two_objects():
    labels = np.zeros((12, 30), np.int64)
    labels[2:10, 2:9] = 1
    labels[2:10, 11:18] = 2  # a 2-pixel gap (columns 9, 10) from 1
    w = separation_weights(labels, 10.0, 5.0)
    # (5, 9): 1 pixel from object 1, 2 from object 2 -> 1 + 10 exp(-9 / 50)
    assert np.isclose(w[5, 9], 1 + 10 * np.exp(-9 / 50), atol=1e-4)
    assert np.isclose(w[5, 10], w[5, 9])
    # (5, 1): 1 from object 1, 10 from object 2 -> 1 + 10 exp(-121 / 50)
    assert np.isclose(w[5, 1], 1 + 10 * np.exp(-121 / 50), atol=1e-4)
    assert w[5, 29] == 1.0  # beyond 3 sigma of object 1
    assert np.all(w[labels > 0] == 1.0)
    assert np.all(separation_weights(labels, 0.0, 5.0) == 1.0)
    assert np.all(separation_weights(np.where(labels == 2, 0, labels), 10.0, 5.0) == 1.0)  # one object
    t = METHOD.targets(Instances.from_label_image(labels), CONFIG)
    assert np.array_equal(t["weights"], w)


def test_separation_weights_raise_the_background_pin_between_nuclei():
    labels = np.zeros((12, 30), np.int64)
    labels[2:10, 2:9] = 1
    labels[2:10, 11:18] = 2
    truth = Instances.from_label_image(labels)
    colour = np.array([0, 1, 2])[labels]
    colour[:, 9:11] = 1  # the gap painted as a cell: a bridge that merges the two
    raw = _raw_for(colour)
    losses = [
        float(METHOD.loss(raw, METHOD.collate([METHOD.targets(truth, {**CONFIG, "separation_weight": w})]),
                          {**CONFIG, "train_alpha": 8.0})["background"])
        for w in (0.0, 10.0)
    ]
    assert losses[1] > 5 * losses[0] > 0


def test_loss_zero_for_a_proper_colouring_even_if_distant_instances_share_a_colour():
    labels = _scene()
    good = np.array([0, 1, 2, 1])[labels]  # C shares A's colour, but they are not adjacent
    out = _loss(labels, good)
    assert out["total"] < 1e-4


def test_loss_positive_when_adjacent_instances_share_a_colour():
    labels = _scene()
    out = _loss(labels, np.array([0, 1, 1, 2])[labels])
    # groups bg, A, B, C: A and B each average |cos| 1 over {bg, B/A} -> 0.5; mean 0.25; x w_inter 1
    assert np.isclose(out["inter"], 0.25, atol=1e-3)
    assert np.isclose(out["total"], 0.25, atol=1e-2)
    # a cell wearing the background colour is pinned away too
    assert _loss(labels, np.array([0, 0, 1, 2])[labels])["total"] > 0.5


def test_loss_inner_term_penalises_mixed_colours_within_an_instance():
    labels = _scene()
    colour = np.array([0, 1, 2, 3])[labels]
    colour[4:14, 4:9] = 3  # half of A in another colour
    assert _loss(labels, colour)["inner"] > 0.05


def test_greedy_colouring_gives_touching_cells_different_colours_in_the_order_asked():
    # A ring of five cells around a sixth: an odd wheel, which needs four colours.
    ring = [(1, 2), (2, 3), (3, 4), (4, 5), (5, 1)]
    pairs = np.array(ring + [(i, 6) for i in range(1, 6)] + [(0, i) for i in range(1, 7)])
    colour = greedy_colouring(pairs, [6, 1, 2, 3, 4, 5], 5)
    assert colour[0] == 0 and colour[6] == 1  # the first visited takes the first colour
    assert all(colour[i] != colour[j] for i, j in pairs.tolist() if i)
    assert set(colour[1:].tolist()) == {1, 2, 3, 4}
    # With three cell colours one pair must share; the rest still differ.
    short = greedy_colouring(pairs, [6, 1, 2, 3, 4, 5], 4)
    assert sum(short[i] == short[j] for i, j in pairs.tolist() if i) == 1


def test_colouring_order_front_to_back_or_top_to_bottom():
    labels = _scene()  # A (1) and B (2) side by side at the top, C (3) below
    assert colouring_order(labels, np.array([2, 0, 1]), "depth") == [2, 3, 1]
    assert colouring_order(labels, np.array([2, 0, 1]), "raster") == [1, 2, 3]
    assert colouring_order(labels, np.array([0, 0, 0]), "depth") == [1, 2, 3]  # ties by raster
    with pytest.raises(ValueError, match="colour order"):
        colouring_order(labels, np.array([0, 0, 0]), "size")


def test_colour_target_loss_follows_the_truth_colouring_and_fades_out():
    labels = _scene()
    truth = Instances.from_label_image(labels).with_depth(np.array([1, 0, 2]))
    config = {**CONFIG, "w_colour": 1.0, "colour_fade": [0.3, 0.6]}
    batch = METHOD.collate([METHOD.targets(truth, config)])
    assert batch["colours"].tolist() == [0, 2, 1, 1]  # B is in front: colour 1, A touches it: 2
    on = {**config, "train_alpha": 8.0, "train_w_colour": 1.0}
    followed = METHOD.loss(_raw_for(np.array([0, 2, 1, 1])[labels]), batch, on)
    swapped = METHOD.loss(_raw_for(np.array([0, 1, 2, 1])[labels]), batch, on)
    # both are proper colourings (the paper's terms ~0); only the target tells them apart
    assert float(followed["colour"]) < 1e-3 < 1.0 < float(swapped["colour"])
    assert float(swapped["total"] - swapped["colour"]) < 1e-3
    assert [METHOD.on_progress(config, f)["train_w_colour"] for f in (0.0, 0.3, 0.45, 0.6, 0.9)] == pytest.approx([1, 1, 0.5, 0, 0])
    assert "colour" not in METHOD.loss(_raw_for(np.array([0, 2, 1, 1])[labels]), batch, {**on, "train_w_colour": 0.0})


def _hand_map() -> tuple[np.ndarray, Instances]:
    colour = np.zeros((48, 48), np.int64)
    colour[2:12, 2:12] = 1
    colour[2:12, 12:20] = 2  # touches the first, other colour
    colour[12:20, 12:20] = 1  # touches the first only diagonally: two instances
    colour[30:44, 5:40] = 3
    colour[25:40, 42:46] = 2
    truth = np.zeros_like(colour)
    for k, box in enumerate([(2, 2, 12, 12), (2, 12, 12, 20), (12, 12, 20, 20), (25, 42, 40, 46), (30, 5, 44, 40)], 1):
        truth[box[0] : box[2], box[1] : box[3]] = k
    colour[46, 46] = 1  # a speck below min_size
    return colour, Instances.from_label_image(truth)


def _same(a: Instances, b: Instances) -> bool:
    order_a, order_b = np.lexsort(a.boxes.T[::-1]), np.lexsort(b.boxes.T[::-1])
    return np.array_equal(a.boxes[order_a], b.boxes[order_b]) and all(
        np.array_equal(a.masks[i], b.masks[j]) for i, j in zip(order_a, order_b)
    )


@pytest.mark.parametrize("tta", ["instances", "affinity"])
def test_postprocess_recovers_instances_from_a_colour_map(tta):
    colour, truth = _hand_map()
    found = METHOD.postprocess(colour_maps(colour, 4, sharp=0.9), {**CONFIG, "tta": tta, "min_size": 4})
    assert len(found) == 5 and _same(found, truth)
    assert np.allclose(found.scores, 0.9 + 0.1 / 4 if tta == "instances" else 1 - 0.1 / 4)


def test_affinity_tta_of_permuted_transformed_views_equals_the_single_view():
    colour, truth = _hand_map()
    config = {**CONFIG, "tta": "affinity", "min_size": 4}
    single = METHOD.postprocess(colour_maps(colour, 4), config)
    rng = np.random.default_rng(1)
    views = []
    for g in range(d4.N_TRANSFORMS):
        order = rng.permutation(3)
        relabel = np.concatenate([[0], 1 + order])  # cell colours permuted per view
        maps = colour_maps(d4.numpy_transform(relabel[colour], g), 4)
        views.append(d4.inverse(maps, g, METHOD.layout))
        assert torch.allclose(permuted(views[-1], order), colour_maps(colour, 4))
    views = torch.stack(views)
    assert not torch.allclose(views[:, 5:].mean(0), views[0, 5:])  # colours really differ
    merged = merge_views(METHOD, views, config)
    assert _same(merged, single) and _same(merged, truth)
    assert np.allclose(merged.scores, 1.0)
    assert _same(merge_views(METHOD, views, {**config, "tta": "instances"}), truth)
    assert METHOD.tta_merge_for(config) == "fields" and METHOD.tta_merge_for({"tta": "instances"}) == "instances"
    assert METHOD.tta_merge == METHOD.tta_merge_for(CONFIG)  # the class attribute is the default's rule


def test_tiny_model_trains_and_segments(tmp_path):
    from blastoseg.inference.predict import segment
    from blastoseg.training.augmentation import Augmentation
    from blastoseg.training.sources import SyntheticSource
    from blastoseg.training.train import Budget, TrainOptions, train

    config = {"net_options": {"base": 4, "depth": 2, "full_res": 4}, "colours": 3}
    model = new_model("fcrnet", config)
    assert model.net.head.out_channels == 3
    options = TrainOptions(Budget(steps=3), batch=2, augmentation=Augmentation(crop=64), device="cpu")
    events = list(train(model, SyntheticSource("shapes", 96), options, tmp_path / "f.safetensors"))
    assert len(events) == 3 and all(np.isfinite(e.losses["total"]) for e in events)
    loaded = load(tmp_path / "f.safetensors", device="cpu")
    assert loaded.config["colours"] == 3
    image = np.random.default_rng(0).random((40, 52)).astype(np.float32)
    for tta in (False, True):
        assert segment(image, loaded, tta=tta, device="cpu").shape == (40, 52)
    # With tta "affinity", segment averages the views' maps (the fields rule).
    from blastoseg.inference.predict import Predictor
    from blastoseg.inference.preprocess import normalize

    loaded.config["tta"] = "affinity"
    expected = merge_views(METHOD, Predictor(loaded, True, torch.device("cpu")).view_maps(normalize(image)), loaded.config)
    assert segment(image, loaded, tta=True, device="cpu") == expected


def test_loss_decreases_when_fitting_one_batch():
    torch.manual_seed(0)
    net = METHOD.build({**CONFIG, "net_options": {"base": 8, "depth": 2, "full_res": 8}})
    labels = _scene()
    image = torch.from_numpy((labels > 0).astype(np.float32))[None, None]
    batch = METHOD.collate([METHOD.targets(Instances.from_label_image(labels), CONFIG)])
    optimiser = torch.optim.Adam(net.parameters(), lr=1e-2)
    losses = []
    for _ in range(25):
        out = METHOD.loss(net(image), batch, CONFIG)
        optimiser.zero_grad()
        out["total"].backward()
        optimiser.step()
        losses.append(float(out["total"].detach()))
    assert losses[-1] < 0.6 * losses[0]
