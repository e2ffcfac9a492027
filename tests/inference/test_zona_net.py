"""The learned zona localiser: the geometry around the network, and the shipped network on
synthetic acquisitions and empty wells (its hand-built test frames are in test_localise.py)."""

from __future__ import annotations

import numpy as np
import pytest

from blastoseg.inference.zona_net import (
    SIDE,
    fit_circles,
    load_net,
    predict_zona,
    shipped_path,
    shrink,
)


def _disc(shape, cy, cx, r):
    yy, xx = np.ogrid[: shape[0], : shape[1]]
    return (np.hypot(yy - cy, xx - cx) <= r).astype(np.float32)


def test_shrink_keeps_the_aspect_and_pads_with_black() -> None:
    frame = np.random.default_rng(0).integers(0, 4000, (300, 200)).astype(np.uint16)
    s = shrink(frame)
    assert s.pixels.shape == (SIDE, SIDE) and s.shape == (128, 85)
    assert np.allclose(s.scale, (300 / 128, 200 / 85))
    assert s.pixels[:, 85:].max() == 0 and 0 <= s.pixels.min() and s.pixels.max() <= 1
    labels = shrink(np.full((300, 200), 2, np.uint8), order=0)
    assert labels.pixels.dtype == np.uint8 and set(np.unique(labels.pixels)) == {0, 2}
    with pytest.raises(ValueError, match="2D frame"):
        shrink(np.zeros((2, 3, 4, 5)))


@pytest.mark.parametrize(("cy", "cx", "r"), [(64, 60, 40), (70, 110, 35), (20, 64, 50)])
def test_circles_fit_whole_and_cut_zonas(cy, cx, r) -> None:
    shape = (128, 128)
    fitted = fit_circles(_disc(shape, cy, cx, r), _disc(shape, cy, cx, 0.85 * r))
    assert fitted is not None
    fy, fx, fr, fin, score = fitted
    assert np.hypot(fy - cy, fx - cx) < 1.0 and abs(fr - r) < 1.0 and abs(fin - 0.85 * r) < 1.0
    assert score > 0.9


def test_nothing_or_a_speck_is_no_embryo() -> None:
    shape = (128, 128)
    assert fit_circles(np.zeros(shape), np.zeros(shape)) is None
    assert fit_circles(_disc(shape, 60, 60, 5), _disc(shape, 60, 60, 4)) is None


def test_a_clump_stuck_to_the_zona_does_not_pull_the_circle() -> None:
    shape = (128, 128)
    outer = np.maximum(_disc(shape, 64, 64, 40), _disc(shape, 64, 108, 10))
    fy, fx, fr, _, _ = fit_circles(outer, _disc(shape, 64, 64, 34))
    assert np.hypot(fy - 64, fx - 64) < 1.5 and abs(fr - 40) < 1.5


@pytest.mark.skipif(not shipped_path().is_file(), reason="the shipped zona network is missing")
def test_the_shipped_network_finds_synthetic_zonas_and_no_embryo_in_empty_wells() -> None:
    from blastoseg.synth import synth_dish, synth_embryo

    net = load_net()
    ious = []
    for seed in range(8):
        s = synth_embryo((256, 256), seed=100 + seed, acquisition=True)
        found = predict_zona(s.image, net)
        assert found is not None
        disc, truth = found.inside_mask(s.image.shape) | found.zona_mask(s.image.shape), s.zona >= 1
        ious.append((disc & truth).sum() / (disc | truth).sum())
    assert np.median(ious) > 0.85, ious
    empty = [predict_zona(synth_dish((256, 256), seed=200 + seed).image, net) for seed in range(6)]
    assert sum(e is None for e in empty) >= 5


def test_a_missing_or_foreign_file_is_refused_and_a_rewritten_one_read_again(tmp_path) -> None:
    import json
    import os

    from safetensors.torch import save_file

    from blastoseg.inference.zona_net import FORMAT, NET, build_net

    with pytest.raises(FileNotFoundError, match="no zona localiser"):
        load_net(tmp_path / "absent.safetensors")
    state = {k: v.contiguous() for k, v in build_net().state_dict().items()}
    path = tmp_path / "zona.safetensors"
    save_file(state, str(path), metadata={"format": json.dumps("blastoseg-checkpoint-1")})
    with pytest.raises(ValueError, match="not a zona localiser"):
        load_net(path)
    meta = {"format": FORMAT, "stage": "zona", "net": NET, "side": SIDE}
    save_file(state, str(path), metadata={k: json.dumps(v) for k, v in meta.items()})
    os.utime(path, ns=(1, 1))
    first = load_net(path)
    assert load_net(path) is first
    save_file(state, str(path), metadata={k: json.dumps(v) for k, v in meta.items()})
    os.utime(path, ns=(2, 2))
    assert load_net(path) is not first
