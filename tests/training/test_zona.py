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
