"""The `layered` method (seed paper 002): targets, loss, clustering, D4, a tiny training run."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from blastoseg import d4
from blastoseg.d4 import transform_instances
from blastoseg.instances import Instances
from blastoseg.methods import get_method
from blastoseg.methods.layered.cluster import (
    assign_to_modes,
    find_modes,
    main_parts,
    occlusion_depth,
)
from blastoseg.methods.layered.method import clip_to_layers, layer_labels

METHOD = get_method("layered")
C = 8


pytestmark = pytest.mark.usefixtures("one_thread")


def _stack() -> Instances:
    """Instances C, A, E, D, B (in that index order) on 20 x 24; A over B over C over D.

    A, B, C and D all cover pixels (8..9, 8..9): D is 4th there, so 3 layers drop it.
    """
    rects = {"C": (8, 8, 16, 16), "A": (2, 2, 10, 10), "E": (15, 18, 20, 24), "D": (8, 8, 12, 12), "B": (6, 6, 14, 14)}
    depth = {"C": 2, "A": 0, "E": 1, "D": 3, "B": 1}
    stack = np.zeros((5, 20, 24), bool)
    for i, (y0, x0, y1, x1) in enumerate(rects.values()):
        stack[i, y0:y1, x0:x1] = True
    return Instances.from_mask_stack(stack, depth=[depth[k] for k in rects])


def _config(**changes: object) -> dict:
    return {**METHOD.default_config(), "embedding_dim": C, "layers": 3, **changes}


def _codes(n: int) -> np.ndarray:
    """(n + 1, C): background 0, instance i -> 4 e_(i-1): pairwise L1 distance 8, L1 norm 4."""
    codes = np.zeros((n + 1, C), np.float32)
    codes[np.arange(1, n + 1), np.arange(n) % C] = 4.0
    return codes


def _raw(labels: np.ndarray, codes: np.ndarray, logit: float = 15.0) -> torch.Tensor:
    """(1, L + L*C, H, W) raw output that is perfect for `labels` (L, H, W)."""
    n_layers, h, w = labels.shape
    semantic = np.where(labels > 0, logit, -logit).astype(np.float32)
    emb = np.moveaxis(codes[labels], -1, 1).reshape(n_layers * C, h, w)
    return torch.from_numpy(np.concatenate([semantic, emb]))[None]


def _maps(inst: Instances, noise: float = 0.05, seed: int = 0) -> torch.Tensor:
    labels = layer_labels(inst, 3)
    raw = _raw(labels, _codes(len(inst)), logit=float(np.log(9.0)))[0]  # probability 0.9 / 0.1
    rng = np.random.default_rng(seed)
    raw[3:] += torch.from_numpy(rng.uniform(-noise, noise, raw[3:].shape).astype(np.float32))
    return METHOD.activate(raw[None], _config())[0]


# ---------------------------------------------------------------------- targets
def test_targets_exact_on_a_four_deep_stack() -> None:
    inst = _stack()
    labels = METHOD.targets(inst, _config())["layers"]
    c, a, e, d, b = 1, 2, 3, 4, 5  # label = index + 1
    assert labels.shape == (3, 20, 24)
    assert labels[:, 3, 3].tolist() == [a, 0, 0]
    assert labels[:, 7, 7].tolist() == [a, b, 0]
    assert labels[:, 8, 8].tolist() == [a, b, c]  # D is 4th here: dropped
    assert labels[:, 10, 10].tolist() == [b, c, d]
    assert labels[:, 15, 15].tolist() == [c, 0, 0]
    assert labels[:, 16, 20].tolist() == [e, 0, 0]
    assert labels[:, 0, 0].tolist() == [0, 0, 0]
    # Every pixel against a brute-force per-pixel sort by (depth, index).
    stack = inst.to_mask_stack()
    for y in range(20):
        for x in range(24):
            cover = sorted(np.flatnonzero(stack[:, y, x]), key=lambda i: (inst.depth[i], i))[:3]
            assert labels[:, y, x].tolist() == [i + 1 for i in cover] + [0] * (3 - len(cover))


def test_clip_to_layers_cuts_only_the_fourth() -> None:
    inst = _stack()
    clipped = clip_to_layers(inst, 3)
    assert len(clipped) == 5 and np.array_equal(clipped.depth, inst.depth)
    areas = inst.areas()
    assert clipped.areas().tolist() == [areas[0], areas[1], areas[2], areas[3] - 4, areas[4]]
    assert not clipped.mask(3)[8:10, 8:10].any() and clipped.mask(3)[10:12, 10:12].all()
    assert clip_to_layers(inst, 4) == inst


# ---------------------------------------------------------------------- loss
def _loss(raw: torch.Tensor, inst: Instances) -> dict[str, torch.Tensor]:
    config = _config()
    return METHOD.loss(raw, METHOD.collate([METHOD.targets(inst, config)]), config)


def test_loss_is_small_for_perfect_embeddings_and_larger_for_mixed() -> None:
    inst = _stack()
    labels = layer_labels(inst, 3)
    perfect = _loss(_raw(labels, _codes(5)), inst)
    assert float(perfect["var"]) == 0.0 and float(perfect["dist"]) == 0.0
    assert float(perfect["reg"]) == pytest.approx(4.0)  # mean L1 norm of the means
    assert float(perfect["total"]) == pytest.approx(0.001 * 4.0, abs=1e-5)
    assert float(perfect["semantic"]) < 1e-5 and float(perfect["dice"]) < 1e-5
    same = np.zeros((6, C), np.float32)
    same[1:] = _codes(1)[1]  # every instance gets one code: all pairs at distance 0
    mixed = _loss(_raw(labels, same), inst)
    assert float(mixed["dist"]) == pytest.approx((2 * 1.5) ** 2)
    assert float(mixed["total"]) > 9.0


def test_variance_uses_one_mean_over_all_layers() -> None:
    """B (16 px) has 12 px in layer 0 at code c and 4 in layer 1 at c + 2 e0.

    One mean over both layers is c + 0.5 e0: layer-0 pixels lie 0.5 away (no hinge),
    layer-1 pixels 1.5 away: (1.5 - 0.5)^2 * 4 / 16 = 0.25 for B, 0 for A -> 0.125.
    """
    stack = np.zeros((2, 8, 8), bool)
    stack[0, 0:4, 0:4] = True
    stack[1, 2:6, 2:6] = True
    inst = Instances.from_mask_stack(stack, depth=[0, 1])
    labels = layer_labels(inst, 3)
    raw = _raw(labels, _codes(2))
    raw[0, 3 + C + 0][torch.from_numpy(labels[1] == 2)] += 2.0  # layer 1, embedding channel 0
    out = _loss(raw, inst)
    assert float(out["var"]) == pytest.approx(0.125)
    assert float(out["dist"]) == 0.0


def test_loss_gradient_flows_to_heads_where_it_should() -> None:
    inst = _stack()
    torch.manual_seed(0)
    raw = torch.randn(1, 3 + 3 * C, 20, 24, requires_grad=True)
    out = _loss(raw, inst)
    out["total"].backward()
    grad = raw.grad[0]
    assert torch.isfinite(grad).all()
    assert (grad[:3] != 0).all()  # BCE reaches every semantic logit
    occupied = torch.from_numpy(layer_labels(inst, 3) > 0)
    emb = grad[3:].reshape(3, C, 20, 24).abs().sum(1)
    assert (emb[occupied] > 0).all() and (emb[~occupied] == 0).all()


def test_loss_batches_keep_images_apart() -> None:
    """Two images with the same codes: instances of different images are never pushed apart."""
    inst = _stack()
    config = _config()
    labels = layer_labels(inst, 3)
    raw = torch.cat([_raw(labels, _codes(5))] * 2)
    targets = METHOD.collate([METHOD.targets(inst, config)] * 2)
    assert int(targets["layers"].max()) == 10 and targets["owner"].tolist() == [0] * 5 + [1] * 5
    assert float(METHOD.loss(raw, targets, config)["dist"]) == 0.0


# ---------------------------------------------------------------------- clustering
def test_modes_use_an_l1_bandwidth() -> None:
    points = torch.zeros(300, C)
    points[150:] += 10.0
    modes = find_modes(points, 1.5)
    assert sorted(modes[:, 0].tolist()) == [0.0, 10.0]
    probe = torch.zeros(2, C)
    probe[0, :2] = 0.7  # L1 1.4, inside
    probe[1, :2] = 0.8  # L1 1.6, outside (L2 1.13 would be inside)
    assert assign_to_modes(probe, torch.zeros(1, C), 1.5).tolist() == [0, -1]


def test_occlusion_depth_breaks_the_weakest_cycle() -> None:
    """A over B (3 px), B over C (3 px), C over A (1 px): the 1-px vote loses."""
    planes = np.array([[[1, 1, 1, 2, 2, 2, 3]], [[2, 2, 2, 3, 3, 3, 1]]])
    assert occlusion_depth(planes).tolist() == [0, 1, 2]


def test_postprocess_recovers_amodal_masks_and_depth() -> None:
    inst = _stack()
    found = METHOD.postprocess(_maps(inst), _config(min_size=4))
    truth = clip_to_layers(inst, 3)  # D's 4th-layer corner cannot be represented
    iou = found.iou(truth)
    assert len(found) == 5 and np.allclose(iou.max(0), 1.0) and np.allclose(iou.max(1), 1.0)
    match = iou.argmax(0)
    # Occlusion levels: A 0, B behind A, C behind both, D behind B and C, E alone.
    assert found.depth[match].tolist() == [2, 0, 0, 3, 1]
    assert np.allclose(found.scores, 0.9, atol=1e-5)


def test_hidden_layers_have_their_own_threshold() -> None:
    inst = _stack()
    maps = _maps(inst)
    maps[1:3] = torch.where(maps[1:3] > 0.5, 0.35, maps[1:3])  # hidden parts only 35 % sure
    one = METHOD.postprocess(maps, _config(min_size=4))
    two = METHOD.postprocess(maps, _config(min_size=4, foreground_threshold=0.5, deep_threshold=0.3))
    full = clip_to_layers(inst, 3).areas().sum()
    assert one.areas().sum() < full and two.areas().sum() == full


def test_postprocess_min_size_and_empty() -> None:
    inst = _stack()
    found = METHOD.postprocess(_maps(inst), _config(min_size=31))  # E (30 px) and D (12 px) go
    assert sorted(found.areas().tolist()) == sorted(a for a in clip_to_layers(inst, 3).areas().tolist() if a >= 31)
    empty = torch.zeros(3 + 3 * C, 16, 16)
    assert len(METHOD.postprocess(empty, _config())) == 0


@pytest.mark.parametrize("g", range(8))
def test_d4_consistency(g: int) -> None:
    inst = _stack()
    config = _config(min_size=4)
    raw = torch.randn(1, 3 + 3 * C, 20, 24)
    layout = METHOD.layout
    assert torch.allclose(
        METHOD.activate(d4.transform(raw, g, layout), config), d4.transform(METHOD.activate(raw, config), g, layout)
    )
    maps = _maps(inst, seed=g)
    direct = transform_instances(METHOD.postprocess(maps, config), g)
    turned = METHOD.postprocess(d4.transform(maps, g, layout), config)
    iou = turned.iou(direct)
    assert len(turned) == len(direct) == 5 and np.allclose(iou.max(1), 1.0)
    assert np.array_equal(turned.depth, direct.depth[iou.argmax(1)])


# ---------------------------------------------------------------------- end to end
def test_tiny_model_trains_and_segments(tmp_path) -> None:  # noqa: ANN001
    from blastoseg.inference.predict import segment
    from blastoseg.model import new_model
    from blastoseg.training.augmentation import Augmentation
    from blastoseg.training.sources import PairSource
    from blastoseg.training.train import Budget, TrainOptions, train

    inst = _stack().shifted(6, 4, (32, 32))
    image = np.zeros((32, 32), np.float32)
    for i in range(len(inst)):  # outlines of the visible parts, as in the shapes data
        visible = inst.visible_labels() == i + 1
        image[visible & ~np.roll(visible, 1, 0)] = 1.0
        image[visible & ~np.roll(visible, 1, 1)] = 1.0
    config = {"net_options": {"base": 4, "depth": 2, "full_res": 4}, "min_size": 4}
    model = new_model("layered", config)
    assert model.net(torch.zeros(1, 1, 32, 32)).shape == (1, 3 + 3 * 8, 32, 32)
    options = TrainOptions(Budget(steps=3), batch=2, augmentation=Augmentation(crop=32), device="cpu")
    events = list(train(model, PairSource([(image, inst)]), options, tmp_path / "m.safetensors", validation=[(image, inst)]))
    assert len(events) == 3 and all(np.isfinite(e.losses["total"]) for e in events)
    assert events[-1].saved is not None and events[-1].validation is not None
    raw = model.net.eval()(torch.from_numpy(image)[None, None])
    found = METHOD.postprocess(METHOD.activate(raw, model.config)[0], model.config)
    assert found.shape == (32, 32)
    with_tta = segment(image, tmp_path / "m.safetensors", tta=True, device="cpu")
    assert with_tta.shape == (32, 32) and np.all(with_tta.depth >= 0)


def test_convex_completion_grows_only_the_cut_cell() -> None:
    maps = _maps(_stack())
    plain = METHOD.postprocess(maps, _config(min_size=4))
    convex = METHOD.postprocess(maps, _config(min_size=4, convex=True))
    grown = convex.areas() - plain.areas()
    # Only D, an L after losing its 4th-layer corner (12 px of its 16), grows: by part of that corner.
    assert sorted(plain.areas().tolist()) == [12, 30, 64, 64, 64]
    assert (grown > 0).sum() == 1 and 0 < grown.max() < 4 and plain.areas()[grown.argmax()] == 12
    assert all((c | p).sum() == c.sum() for c, p in zip(convex.to_mask_stack(), plain.to_mask_stack()))


def test_main_parts_drops_specks_that_would_widen_the_hull() -> None:
    mask = np.zeros((40, 40), bool)
    mask[5:25, 5:25] = True  # the body, 400 px
    mask[30:32, 35:37] = True  # a 4 px speck far from it
    mask[5:25, 27:30] = True  # a 60 px part, 15 % of the body
    inst = Instances.from_masks((40, 40), [((0, 0, 40, 40), mask)])
    kept = main_parts(inst, 0.1)
    assert kept.areas().tolist() == [460] and tuple(kept.boxes[0]) == (5, 5, 25, 30)
    assert main_parts(inst, 0.2).areas().tolist() == [400]
    assert kept.convex().areas()[0] < inst.convex().areas()[0]
