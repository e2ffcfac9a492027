"""Training of the zona localiser: its pool, its validation as inference fits, and a file
that the localiser loads."""

from __future__ import annotations

import numpy as np

from blastoseg.inference.zona_net import SIDE, load_net, predict_zona, shipped_path
from blastoseg.training import zona


def test_the_pool_records_where_each_frame_ends_and_validation_scores_the_shipped_net() -> None:
    images, labels, shapes = zona.make_pool(6, seed=3, progress=False)
    assert images.shape == labels.shape == (6, SIDE, SIDE) and shapes.shape == (6, 2)
    for image, label, (h, w) in zip(images, labels, shapes):
        assert max(h, w) == SIDE and not image[h:].any() and not image[:, w:].any() and not label[h:].any()
    assert 0.8 < zona.validate(load_net(shipped_path()), images, labels, shapes) <= 1.0


def test_a_short_run_writes_a_file_the_localiser_loads(tmp_path) -> None:
    out = tmp_path / "zona.safetensors"
    result = zona.train(out, steps=2, pool=8, val=4, seed=5, lr=1e-3, batch=4, command="test")
    assert out.is_file() and 0.0 <= result["best_val_disc_iou"] <= 1.0
    net = load_net(out)
    frame = np.random.default_rng(0).random((90, 120)).astype(np.float32)
    found = predict_zona(frame, net)  # an untrained net: anything or nothing, but no error
    assert found is None or found.outer_radius > 0


def test_a_deep_cut_puts_the_embryo_centre_beyond_an_edge() -> None:
    yy, xx = np.mgrid[:200, :240]
    disc = np.hypot(yy - 100, xx - 130) <= 60
    zona_labels = np.where(disc, np.where(np.hypot(yy - 100, xx - 130) <= 50, 2, 1), 0).astype(np.uint8)
    image = zona_labels.astype(np.float32)
    rng = np.random.default_rng(0)
    for _ in range(8):
        cut_image, cut_zona = zona.deep_cut(image, zona_labels, rng)
        assert cut_image.shape == cut_zona.shape and np.array_equal(cut_image, cut_zona.astype(np.float32))
        # at most half of the disc is left, and it touches the new edge
        assert 0.3 * disc.sum() < (cut_zona > 0).sum() <= 0.5 * disc.sum()
        rows, cols = np.nonzero(cut_zona)
        assert rows.min() == 0 or cols.min() == 0 or rows.max() == cut_zona.shape[0] - 1 or cols.max() == cut_zona.shape[1] - 1
    already_cut = zona_labels[:, :150]
    same, same_zona = zona.deep_cut(image[:, :150], already_cut, rng)
    assert same_zona is already_cut
