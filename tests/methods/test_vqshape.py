"""The `vqshape` method (seed paper 001): quantiser, VQ-VAE, targets, pasting, engine hooks."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from scipy import ndimage
from torch.nn import functional as F

from blastoseg import checkpoint
from blastoseg.inference.predict import _inference_net, segment
from blastoseg.instances import Instances
from blastoseg.methods.vqshape.method import METHOD, occlusion_target, paste_masks
from blastoseg.methods.vqshape.vqvae import (
    VQVAE,
    VectorQuantizer,
    mask_crops,
    reconstruction_report,
)
from blastoseg.model import Model, new_model
from blastoseg.training.augmentation import Augmentation
from blastoseg.training.sources import SyntheticSource
from blastoseg.training.train import Budget, TrainOptions, train
from tests.fakes import FakeDetector

SRC = Path(__file__).resolve().parents[1] / "src" / "blastoseg" / "methods"


pytestmark = pytest.mark.usefixtures("one_thread")


def _rects(shape: tuple[int, int], rects: list[tuple[int, int, int, int]]) -> Instances:
    stack = np.zeros((len(rects), *shape), bool)
    for i, (y0, x0, y1, x1) in enumerate(rects):
        stack[i, y0:y1, x0:x1] = True
    return Instances.from_mask_stack(stack)


# ---------------------------------------------------------------------- VQ-VAE
def test_quantiser_straight_through_codebook_terms_and_dead_code_restart() -> None:
    quantiser = VectorQuantizer(4, 2, beta=0.25)
    with torch.no_grad():
        quantiser.codebook.copy_(torch.tensor([[0.0, 0.0], [1.0, 0.0], [0.0, 1.0], [10.0, 10.0]]))
    vectors = torch.tensor([[0.1, 0.1], [0.9, 0.2], [0.2, 0.8]])
    latents = vectors.t().reshape(1, 2, 1, 3).clone().requires_grad_(True)
    out, index, terms = quantiser(latents)
    assert index.tolist() == [[[0, 1, 2]]]
    assert torch.allclose(out.detach().reshape(2, 3).t(), quantiser.codebook.detach()[:3])
    squared = ((vectors - quantiser.codebook.detach()[:3]) ** 2).mean()  # (0.01*2 + 0.01+0.04 + 0.04+0.04) / 6
    assert float(terms["codebook"].detach()) == pytest.approx(float(squared)) == pytest.approx(0.15 / 6)
    assert float(terms["commitment"].detach()) == pytest.approx(0.25 * float(squared))
    out.sum().backward()  # straight through: d out / d latents = 1
    assert torch.equal(latents.grad, torch.ones_like(latents))
    latents.grad = None
    terms["codebook"].backward()  # moves the chosen codes only, towards the latents
    assert latents.grad is None or not latents.grad.any()
    assert torch.allclose(quantiser.codebook.grad[:3], 2 * (quantiser.codebook.detach()[:3] - vectors) / 6)
    assert not quantiser.codebook.grad[3].any()
    assert quantiser.usage.tolist() == [1, 1, 1, 0]
    assert quantiser.restart_dead(latents.detach(), torch.Generator().manual_seed(0)) == 1
    moved = quantiser.codebook.detach()[3]
    assert float((vectors - moved).norm(dim=1).min()) < 0.01  # onto one of the batch's latents
    assert not quantiser.usage.any()


def _ellipses(n: int, seed: int) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    yy, xx = torch.meshgrid(torch.arange(28.0) + 0.5, torch.arange(28.0) + 0.5, indexing="ij")
    p = torch.rand(n, 4, generator=g)
    cy, cx, a, b = (8 + 12 * p[:, 0], 8 + 12 * p[:, 1], 5 + 8 * p[:, 2], 5 + 8 * p[:, 3])
    inside = ((yy - cy[:, None, None]) / a[:, None, None]) ** 2 + ((xx - cx[:, None, None]) / b[:, None, None]) ** 2 <= 1
    return inside.float()[:, None]


def test_vqvae_learns_ellipses_and_uses_its_codebook() -> None:
    torch.manual_seed(0)
    vqvae = VQVAE(codes=16, dim=8, width=8)
    held_out = _ellipses(256, 99)
    assert reconstruction_report(vqvae, held_out)["reconstruction_iou"] < 0.5
    optimiser = torch.optim.Adam(vqvae.parameters(), 3e-3)
    for step in range(200):
        masks = _ellipses(32, step)
        _, _, terms = vqvae(masks)
        optimiser.zero_grad()
        terms["total"].backward()
        optimiser.step()
        if (step + 1) % 50 == 0:
            vqvae.quantizer.restart_dead(vqvae.encoder(masks * 2 - 1))
    report = reconstruction_report(vqvae, held_out)
    assert report["reconstruction_iou"] > 0.88  # measured 0.94 after 200 steps
    assert report["codebook_usage"] >= 0.75 and report["masks"] == 256


def test_mask_crops_exact_box_and_jitter() -> None:
    inst = _rects((40, 50), [(5, 10, 25, 40), (20, 0, 40, 12)])
    exact = mask_crops([inst], size=28)
    assert exact.shape == (2, 1, 28, 28) and float(exact[:, :, 1:-1, 1:-1].min()) == pytest.approx(1.0)
    assert float(exact.min()) > 0.5  # edge bins blend with the outside, as bilinear sampling does
    jittered = mask_crops([inst], size=28, jitter=0.2, copies=3, generator=torch.Generator().manual_seed(1))
    assert jittered.shape == (6, 1, 28, 28)
    assert torch.allclose(jittered[:2], exact)
    assert float(jittered[2:].min()) < 0.5  # a grown box sees background


# ---------------------------------------------------------------------- targets and pasting
def test_occlusion_target_and_the_pooled_loss_on_a_hand_made_case() -> None:
    rects = [(0, 0, 32, 32), (16, 16, 48, 48), (40, 40, 64, 48), (0, 50, 6, 64), (0, 50, 64, 58)]
    inst = _rects((64, 64), rects)
    target = occlusion_target(inst)
    expected = np.zeros((64, 64), np.float32)
    expected[16:32, 16:32] = expected[40:48, 40:48] = expected[0:6, 50:58] = 1
    np.testing.assert_array_equal(target, expected)
    # The loss pools it onto the finest FPN level (stride 4): fractions of each 4 x 4 cell.
    pooled = np.zeros((16, 16), np.float32)
    pooled[4:8, 4:8] = pooled[10:12, 10:12] = 1
    pooled[0, 12:15] = [0.5, 1, 0.5]
    pooled[1, 12:15] = [0.25, 0.5, 0.25]
    model = new_model("vqshape")
    captured = {}
    model.net.occlusion.register_forward_hook(lambda module, args, out: captured.update(logits=out[1].detach()))
    batch = METHOD.collate([METHOD.targets(inst, model.config)])
    model.net.train()
    terms = {k: v.detach() for k, v in METHOD.training_loss(model.net, torch.rand(1, 1, 64, 64), batch, model.config).items()}
    want = F.binary_cross_entropy_with_logits(captured["logits"], torch.from_numpy(pooled)[None, None])
    assert float(terms["occlusion"]) == pytest.approx(float(want), rel=1e-5)
    assert float(terms["total"]) == pytest.approx(sum(float(terms[k]) for k in terms if k not in ("total", "occlusion", "initial_mask")) + 0.01 * float(terms["occlusion"]), rel=1e-5)


def test_paste_masks_lands_exactly_on_the_box() -> None:
    full = torch.ones(1, 28, 28)
    [(box, crop)] = paste_masks(torch.tensor([[10.0, 20.0, 38.0, 48.0]]), full, (64, 64))
    assert box == (20, 10, 48, 38) and crop.all()
    half = torch.zeros(1, 28, 28)
    half[:, :, :14] = 1  # left half of the box, 14 px wide on a 28 px box
    [(box, crop)] = paste_masks(torch.tensor([[10.0, 20.0, 38.0, 48.0]]), half, (64, 64))
    assert crop[:, :14].all() and not crop[:, 15:].any()
    # A box past the image edge is clipped; a degenerate one keeps its slot.
    pairs = paste_masks(torch.tensor([[50.0, 50.0, 70.0, 70.0], [5.0, 5.0, 5.0, 9.0]]), torch.ones(2, 28, 28), (64, 64))
    assert pairs[0][0] == (50, 50, 64, 64) and pairs[0][1].all() and not pairs[1][1].any()


# ---------------------------------------------------------------------- engine hooks
class _BlobDetector(FakeDetector):
    """A `Detector` without a network: connected bright blobs, scored by size."""

    def detect(self, net: torch.nn.Module, images: torch.Tensor, config: dict) -> list[Instances]:
        out = []
        for image in images[:, 0].cpu().numpy():
            labels, _ = ndimage.label(image > 0.5)
            found = Instances.from_label_image(labels)
            out.append(found[found.areas() >= config.get("min_area", 0)])
        return out


def test_predict_turns_every_detected_view_back() -> None:
    image = np.zeros((70, 90), np.float32)
    image[5:20, 10:50] = image[30:65, 60:70] = image[40:44, 5:30] = 1
    image[0, 0] = -1  # keeps normalisation from stretching
    model = Model(_BlobDetector(), {"normalize_percentiles": (0, 100), "tta_min_votes": 8}, torch.nn.Identity())
    plain = segment(image, model, tta=False, device="cpu")
    merged = segment(image, model, tta=True, device="cpu")
    assert len(plain) == 3
    assert len(merged) == 3 and np.allclose(merged.scores, 1.0)  # all 8 views agree only if each is undone right
    assert (merged.iou(plain).max(1) == 1.0).all()


def test_tta_settings_apply_only_when_views_are_merged() -> None:
    image = np.zeros((70, 90), np.float32)
    image[5:20, 10:50] = image[30:65, 60:70] = image[40:44, 5:30] = 1  # 600, 350 and 100 px
    image[0, 0] = -1
    config = {"normalize_percentiles": (0, 100), "tta_min_votes": 8, "min_area": 0, "tta_settings": {"min_area": 200}}
    model = Model(_BlobDetector(), config, torch.nn.Identity())
    assert len(segment(image, model, tta=False, device="cpu")) == 3
    assert sorted(segment(image, model, tta=True, device="cpu").areas()) == [350, 600]
    assert model.config["min_area"] == 0  # the model's own settings are untouched


def test_segment_with_an_untrained_model_with_and_without_tta() -> None:
    model = new_model("vqshape", {"working_size": 0, "box_score_thresh": 0.0})
    image = np.random.default_rng(0).random((80, 100)).astype(np.float32)
    plain = segment(image, model, tta=False, device="cpu")
    merged = segment(image, model, tta=True, device="cpu")
    assert isinstance(plain, Instances) and plain.shape == (80, 100) and len(plain) > 0
    assert isinstance(merged, Instances) and merged.shape == (80, 100)
    assert np.all(plain.scores <= 1) and np.all(merged.scores <= 1)
    # The fused, channels_last inference copy detects what the training network does.
    model.net.eval()
    x = torch.from_numpy(image[None, None, :64, :96].copy())
    with torch.inference_mode():
        ref = model.net(x)[0]
        fused = _inference_net(model, torch.device("cpu"))(x.contiguous(memory_format=torch.channels_last))[0]
    assert torch.allclose(ref["boxes"], fused["boxes"], atol=1e-2) and torch.allclose(ref["masks"], fused["masks"], atol=1e-3)


def test_three_steps_of_training_write_a_checkpoint_that_reloads_identically(tmp_path: Path) -> None:
    model = new_model("vqshape", {"box_score_thresh": 0.0})
    options = TrainOptions(Budget(steps=3), batch=2, augmentation=Augmentation(crop=64), device="cpu")
    events, frozen = [], None
    for event in train(model, SyntheticSource("embryo", size=96), options, tmp_path / "vq.safetensors"):
        events.append(event)
        if len(events) == 2:
            frozen = {k: v.clone() for k, v in model.net.vqvae.state_dict().items()}
    assert "vq_reconstruction" in events[0].losses and "code" not in events[0].losses  # pre-training first
    assert {"code", "refine", "occlusion", "loss_classifier"} <= set(events[1].losses)
    assert all(torch.equal(frozen[k], v) for k, v in model.net.vqvae.state_dict().items())  # the prior stays fixed
    path = events[-1].saved
    assert path is not None and path.stat().st_size < 20e6
    loaded = checkpoint.load(path, device="cpu")
    assert loaded.method.name == "vqshape" and int(loaded.net.vqvae.trained) == 1
    assert loaded.metadata["vqvae"]["steps"] == 1
    image = np.random.default_rng(3).random((64, 64)).astype(np.float32)
    a = segment(image, model, tta=False, device="cpu")
    b = segment(image, loaded, tta=False, device="cpu")
    assert len(a) > 0 and a == b


def test_fcn_baseline_trains_without_vq_and_no_source_hard_codes_cuda() -> None:
    model = new_model("vqshape", {"mask_head": "fcn", "occlusion": False})
    assert model.net.vqvae is None and model.net.occlusion is None
    assert list(METHOD.pretrain(model, iter([]), torch.device("cpu"))) == []
    inst = _rects((64, 64), [(4, 4, 40, 40), (20, 20, 60, 60)])
    model.net.train()
    terms = METHOD.training_loss(model.net, torch.rand(1, 1, 64, 64), METHOD.collate([METHOD.targets(inst, model.config)]), model.config)
    assert "mask" in terms and "code" not in terms and "occlusion" not in terms
    assert torch.isfinite(terms["total"])
    for path in SRC.glob("vqshape*.py"):
        assert ".cuda(" not in path.read_text(), path.name


def test_growing_the_fragment_class_keeps_the_cells_and_trains_on_fragments(tmp_path: Path) -> None:
    from blastoseg.instances import CELL, FRAGMENT

    model = new_model("vqshape", {"box_score_thresh": 0.0, "working_size": 0})
    model.net.eval()
    image = torch.from_numpy(np.random.default_rng(4).random((1, 1, 64, 64)).astype(np.float32))
    with torch.no_grad():
        before = METHOD.detect(model.net, image, model.config)[0]
    model.configure({"fragments": True})
    assert model.net.detector.roi_heads.box_predictor.cls_score.out_features == 3
    model.net.eval()
    with torch.no_grad():
        after = METHOD.detect(model.net, image, model.config)[0]
    cells = after.of_class(CELL)
    # The new class starts far below the cells: their detections and scores barely move.
    assert len(cells) == len(before) and np.allclose(cells.scores, before.scores, atol=0.01)
    truth = Instances.concatenate([Instances.from_mask_stack(np.pad(np.ones((1, 20, 20), bool), ((0, 0), (4, 40), (4, 40)))),
                                   Instances.from_mask_stack(np.pad(np.ones((1, 4, 4), bool), ((0, 0), (50, 10), (50, 10)))).with_class(FRAGMENT)])
    targets = METHOD.targets(truth, model.config)
    assert targets["labels"].tolist() == [1, 2] and targets["occlusion"].sum() == 0
    losses = METHOD.training_loss(model.net.train(), image, METHOD.collate([targets]), model.config)
    assert torch.isfinite(losses["total"])
    with pytest.raises(ValueError, match="cannot change"):  # a method that cannot grow says so
        new_model("embedseg").method.rebuilt(model.net, {})
