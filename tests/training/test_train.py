"""Training: sources at the model's scale, object sizes, weight averaging, validation views."""

"""Lovasz hinge, medoids, tiling plans, TTA consensus."""

import numpy as np
import pytest
import torch

from blastoseg.instances import Instances
from blastoseg.settings import PipelineSettings


def test_training_pairs_are_brought_to_the_models_working_size():
    from blastoseg.training.sources import PairSource, SyntheticSource, to_working_size

    image = np.zeros((400, 200), np.float32)
    image[100:300, 50:150] = 1.0
    truth = Instances.from_label_image((image > 0).astype(np.int32))
    small, inst = to_working_size(image, truth, 100)
    assert small.shape == inst.shape == (100, 50)
    assert abs(int(inst.areas()[0]) - 50 * 25) <= 60  # the object shrinks with the frame (to a pixel at the edges)
    assert to_working_size(image, truth, None)[0] is image
    source = PairSource([(image, truth)]).for_model(PipelineSettings(working_size=100))
    assert source.pairs[0][0].shape == (100, 50) and source.pairs[0][1].areas()[0] == inst.areas()[0]
    rng = np.random.default_rng(0)
    assert SyntheticSource("embryo", 256).for_model(PipelineSettings(working_size=128)).draw(rng)[0].shape == (128, 128)
    shapes, truth = SyntheticSource("shapes", 256).for_model(PipelineSettings(working_size=128)).draw(rng)
    assert shapes.shape == truth.shape == (128, 128)
    # A model that inverts bright backgrounds is trained on what predict shows it.
    dark_on_bright = PairSource([(1 - image, truth)]).for_model(PipelineSettings(invert_bright_background=True))
    np.testing.assert_array_equal(dark_on_bright.pairs[0][0], image)


def test_training_records_the_object_sizes_it_sees_and_a_fine_tune_keeps_the_old_range():
    from blastoseg.training.sources import PairSource, SyntheticSource
    from blastoseg.training.train import training_sizes

    labels = np.zeros((64, 64), np.int32)
    labels[4:24, 4:24], labels[30:50, 30:50] = 1, 2  # 20 x 20 squares: diameter 22.6
    squares = PairSource([(labels.astype(np.float32), Instances.from_label_image(labels))])
    sizes, d = training_sizes(PipelineSettings(), squares).object_diameters, np.sqrt(4 * 400 / np.pi)
    assert sizes["median"] == round(d, 2) and sizes["range"] == [round(d / 1.5, 2), round(d * 1.5, 2)]
    knew_smaller = PipelineSettings(object_diameters={"median": 10.0, "range": [5.0, 20.0]})
    assert training_sizes(knew_smaller, squares).object_diameters["range"] == [5.0, round(d * 1.5, 2)]
    synthetic = PipelineSettings(working_size=128)
    sizes = training_sizes(synthetic, SyntheticSource("embryo", 256).for_model(synthetic)).object_diameters
    assert 0 < sizes["range"][0] < sizes["median"] < sizes["range"][1] < 128


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
