"""EmbedSeg's parts: the Lovasz hinge, medoids, windowed maxima, seed scores."""

"""Lovasz hinge, medoids, tiling plans, TTA consensus."""

import numpy as np
import torch

from blastoseg.instances import Instances
from blastoseg.methods.embedseg.lovasz import lovasz_hinge
from blastoseg.methods.embedseg.medoid import EXACT_LIMIT, instance_centres, medoid


def test_lovasz_hinge_is_zero_for_confident_right_answers_and_grows_with_errors():
    truth = torch.tensor([[1.0, 1.0, 0.0, 0.0]])
    assert lovasz_hinge(torch.tensor([[2.0, 2.0, -2.0, -2.0]]), truth).item() == 0.0
    # one false positive with margin error 2: Jaccard of the first error step is 1/3 -> loss 2/3
    loss = lovasz_hinge(torch.tensor([[2.0, 2.0, 1.0, -2.0]]), truth).item()
    assert np.isclose(loss, 2 * (1 - 2 / 3))
    worse = lovasz_hinge(torch.tensor([[-1.0, 2.0, 1.0, -2.0]]), truth).item()
    assert worse > loss


def test_medoid_exact_and_inside_a_c_shape():
    ring = np.argwhere(np.hypot(*np.mgrid[-10:11, -10:11]) >= 7)
    ring = ring[(ring[:, 1] < 14)]  # a C: the centroid lies outside
    m = medoid(ring)
    assert any((ring == m).all(1))
    brute = ring[np.argmin([np.hypot(*(ring - p).T).sum() for p in ring])]
    assert np.array_equal(m, brute)


def test_large_medoid_approximation_is_close_to_exact():
    disk = np.argwhere(np.hypot(*np.mgrid[-40:41, -40:41]) <= 40)
    assert len(disk) > EXACT_LIMIT
    assert np.abs(medoid(disk) - np.array([40, 40])).max() <= 1


def test_instance_centres_modes():
    labels = np.zeros((20, 20), int)
    labels[2:6, 2:12] = 1
    inst = Instances.from_label_image(labels)
    assert np.allclose(instance_centres(inst, "centroid"), [[3.5, 6.5]])
    assert instance_centres(inst, "medoid")[0][0] in (3, 4)


def test_window_max_equals_max_pooling():
    from torch.nn import functional as F

    from blastoseg.methods.embedseg.method import window_max

    x = torch.rand(2, 1, 23, 17)
    for size in (1, 3, 11):
        assert torch.equal(window_max(x, size), F.max_pool2d(x, size, 1, size // 2))


def test_embedseg_scores_a_seed_by_the_seediness_around_it():
    from blastoseg.methods import get_method

    method = get_method("embedseg")
    config = {**method.default_config(), "min_size": 4}
    maps = torch.zeros(6, 32, 32)
    maps[4, 10:20, 10:20] = 0.85  # a nucleus whose averaged seediness stays under 0.9
    maps[4, 15, 15] = 0.86
    yy, xx = torch.meshgrid(torch.arange(32.0), torch.arange(32.0), indexing="ij")
    maps[0], maps[1] = (15 - yy) * (maps[4] > 0), (15 - xx) * (maps[4] > 0)  # all pixels point at its centre
    maps[5] = maps[4]
    assert len(method.postprocess(maps, config)) == 0  # scored by its own seediness (seed_window 1): lost
    maps[5, 15, 15] = 0.95  # the views' peaks, maximised over the window before averaging
    found = method.postprocess(maps, config)
    assert len(found) == 1 and found.areas()[0] == 100
