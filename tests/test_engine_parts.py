"""Lovasz hinge, medoids, tiling plans, TTA consensus."""

import numpy as np
import pytest
import torch

from blastoseg.inference.merging import consensus
from blastoseg.inference.tiling import merge_duplicates, plan_tiles
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


def test_tile_cores_partition_the_image():
    for shape, tile, overlap in [((100, 130), 64, 16), ((64, 64), 64, 16), ((1000, 257), 256, 64)]:
        count = np.zeros(shape, int)
        for t in plan_tiles(shape, tile, overlap):
            count[t.core[0] : t.core[2], t.core[1] : t.core[3]] += 1
            assert t.y1 - t.y0 <= tile and t.x1 - t.x0 <= tile
            assert t.y0 <= t.core[0] and t.core[2] <= t.y1
        assert (count == 1).all()


def _square(shape, y, x, s, score=1.0):
    m = np.zeros(shape, bool)
    m[y : y + s, x : x + s] = True
    return m


def test_merge_duplicates_keeps_the_best_scored():
    stack = np.stack([_square((20, 20), 2, 2, 6), _square((20, 20), 2, 3, 6), _square((20, 20), 12, 12, 4)])
    inst = Instances.from_mask_stack(stack, scores=[0.5, 0.9, 0.7])
    kept = merge_duplicates(inst)
    assert np.allclose(sorted(kept.scores), [0.7, 0.9])


def test_consensus_votes_and_majority_mask():
    shape = (20, 20)
    a = _square(shape, 2, 2, 6)
    b = _square(shape, 2, 3, 6)  # IoU with a = 30/42
    lonely = _square(shape, 14, 14, 3)
    sets = [Instances.from_mask_stack(np.stack([a]))] * 3 + [Instances.from_mask_stack(np.stack([b, lonely]))] * 2
    sets += [Instances.empty(shape)] * 3
    merged = consensus(sets, min_votes=4)
    assert len(merged) == 1  # the lonely square is found in only 2 of 8 views
    assert np.array_equal(merged.mask(0), a)  # 3 of 5 votes for a's pixels
    assert np.isclose(merged.scores[0], 5 / 8)


def test_overlapping_pairs_match_brute_force():
    from blastoseg.boxes import overlapping_pairs

    rng = np.random.default_rng(0)
    def boxes(n):
        y0, x0 = rng.integers(0, 200, (2, n))
        h, w = rng.integers(1, 40, (2, n))
        return np.stack([y0, x0, y0 + h, x0 + w], 1)
    a, b = boxes(300), boxes(200)
    i, j = overlapping_pairs(a, b)
    brute = (np.maximum(a[:, None, 0], b[None, :, 0]) < np.minimum(a[:, None, 2], b[None, :, 2])) & (
        np.maximum(a[:, None, 1], b[None, :, 1]) < np.minimum(a[:, None, 3], b[None, :, 3]))
    assert sorted(zip(i.tolist(), j.tolist())) == sorted(zip(*(v.tolist() for v in np.nonzero(brute))))
    assert len(overlapping_pairs(a[:0], b)[0]) == 0


def test_training_pairs_are_brought_to_the_models_working_size():
    from blastoseg.training.sources import PairSource, SyntheticSource, to_working_size

    image = np.zeros((400, 200), np.float32)
    image[100:300, 50:150] = 1.0
    truth = Instances.from_label_image((image > 0).astype(np.int32))
    small, inst = to_working_size(image, truth, 100)
    assert small.shape == inst.shape == (100, 50)
    assert abs(int(inst.areas()[0]) - 50 * 25) <= 60  # the object shrinks with the frame (to a pixel at the edges)
    assert to_working_size(image, truth, None)[0] is image
    source = PairSource([(image, truth)]).for_model({"working_size": 100})
    assert source.pairs[0][0].shape == (100, 50) and source.pairs[0][1].areas()[0] == inst.areas()[0]
    rng = np.random.default_rng(0)
    assert SyntheticSource("embryo", 256).for_model({"working_size": 128}).draw(rng)[0].shape == (128, 128)
    shapes, truth = SyntheticSource("shapes", 256).for_model({"working_size": 128}).draw(rng)
    assert shapes.shape == truth.shape == (128, 128)
    # A model that inverts bright backgrounds is trained on what predict shows it.
    dark_on_bright = PairSource([(1 - image, truth)]).for_model({"invert_bright_background": True})
    np.testing.assert_array_equal(dark_on_bright.pairs[0][0], image)


def test_training_records_the_object_sizes_it_sees_and_a_fine_tune_keeps_the_old_range():
    from blastoseg.training.sources import PairSource, SyntheticSource
    from blastoseg.training.train import record_training_sizes

    labels = np.zeros((64, 64), np.int32)
    labels[4:24, 4:24], labels[30:50, 30:50] = 1, 2  # 20 x 20 squares: diameter 22.6
    config: dict = {}
    record_training_sizes(config, PairSource([(labels.astype(np.float32), Instances.from_label_image(labels))]))
    sizes, d = config["object_diameters"], np.sqrt(4 * 400 / np.pi)
    assert sizes["median"] == round(d, 2) and sizes["range"] == [round(d / 1.5, 2), round(d * 1.5, 2)]
    config["object_diameters"]["range"] = [5.0, 20.0]  # a model that knew smaller objects
    record_training_sizes(config, PairSource([(labels.astype(np.float32), Instances.from_label_image(labels))]))
    assert config["object_diameters"]["range"] == [5.0, round(d * 1.5, 2)]
    synthetic: dict = {"working_size": 128}
    record_training_sizes(synthetic, SyntheticSource("embryo", 256).for_model(synthetic))
    low, high = synthetic["object_diameters"]["range"]
    assert 0 < low < synthetic["object_diameters"]["median"] < high < 128


def test_the_weight_average_ramps_its_decay_up():
    from blastoseg.training.train import weight_average

    net = torch.nn.Linear(1, 1, bias=False)
    torch.nn.init.constant_(net.weight, 0.0)
    average = weight_average(net, 0.999)
    torch.nn.init.constant_(net.weight, 1.0)
    average.update_parameters(net)  # the first update copies
    torch.nn.init.constant_(net.weight, 2.0)
    average.update_parameters(net)  # then decay (1 + 1) / (10 + 1)
    assert average.module.weight.detach().item() == pytest.approx(1 * 2 / 11 + 2 * 9 / 11)


def test_a_weight_average_is_what_training_validates_saves_and_returns(tmp_path):
    from blastoseg import checkpoint
    from blastoseg.model import new_model
    from blastoseg.training.augmentation import Augmentation
    from blastoseg.training.sources import PairSource
    from blastoseg.training.train import Budget, TrainOptions, train

    labels = np.zeros((64, 64), np.int32)
    labels[8:28, 8:28], labels[36:56, 30:50] = 1, 2
    pairs = [((labels > 0).astype(np.float32), Instances.from_label_image(labels))]
    model = new_model("embedseg", {})
    options = TrainOptions(Budget(steps=4), batch=2, lr=1e-2, augmentation=Augmentation(crop=64),
                           validate_every=4, device="cpu", ema_decay=0.999)
    events = train(model, PairSource(pairs), options, tmp_path / "m.safetensors", validation=pairs)
    for event in events:
        last = {k: v.clone() for k, v in model.net.state_dict().items()}  # the last step's own weights
    assert event.step == 4 and event.validation is not None and event.validation_last is not None
    assert "val_ap50_last" in event.as_dict() and event.saved is not None
    returned, saved = model.net.state_dict(), checkpoint.load(event.saved, "cpu").net.state_dict()
    assert all(torch.allclose(saved[k].float(), v.float()) for k, v in returned.items())
    assert not all(torch.equal(returned[k], last[k]) for k in returned)


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


def test_validation_pairs_are_spread_over_the_eight_views_with_their_truth():
    from blastoseg.training.train import in_view

    image = np.zeros((12, 20), np.float32)
    image[1:4, 2:9] = 1.0  # an asymmetric object in one corner
    truth = Instances.from_label_image(image.astype(np.int32))
    views = [in_view(image, truth, i) for i in range(9)]
    corners = {tuple(np.argwhere(im > 0)[0]) + im.shape for im, _ in views[:8]}
    assert len(corners) == 8  # eight different orientations
    assert np.array_equal(views[8][0], image)  # and then round again
    for im, inst in views:
        assert np.array_equal(inst.mask(0), im > 0)
