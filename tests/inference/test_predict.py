"""segment(): tiling gives the untiled result, TTA runs, stacks go frame by frame."""

import numpy as np
import pytest
import torch
from scipy import ndimage

from blastoseg.inference.predict import segment, segment_frames
from blastoseg.instances import Instances
from blastoseg.model import Model, new_model
from tests.fakes import FakeDense


class Threshold(FakeDense):
    """A local method (no receptive field): the tiling logic is then all that can differ."""

    def postprocess(self, maps, config):
        labels, _ = ndimage.label(maps[0].numpy() > 0.5)
        return Instances.from_label_image(labels)


class Identity(torch.nn.Module):
    multiple = 1

    def forward(self, x):
        return x


def blobs(shape, n, seed):
    rng = np.random.default_rng(seed)
    image = np.zeros(shape, np.float32)
    yy, xx = np.mgrid[: shape[0], : shape[1]]
    for _ in range(n):
        cy, cx = rng.uniform(0, shape[0]), rng.uniform(0, shape[1])
        a, b = rng.uniform(4, 14, 2)
        image[((yy - cy) / a) ** 2 + ((xx - cx) / b) ** 2 <= 1] = 1.0
    image[0, 0] = -1  # keeps percentile normalisation from stretching the blobs
    return image


def test_an_image_four_tiles_wide_matches_untiled_processing():
    model = Model(Threshold(), {"tile_overlap": 40, "normalize_percentiles": (0, 100)}, Identity())
    image = blobs((256, 256), 60, seed=1)
    whole = segment(image, model, tta=False, tile=None, device="cpu")
    tiled = segment(image, model, tta=False, tile=96, device="cpu")
    assert len(whole) == len(tiled) > 20
    iou = whole.iou(tiled)
    assert (iou.max(1) >= 0.95).all() and (iou.max(0) >= 0.95).all()


def test_tta_with_an_invariant_method_changes_nothing():
    model = Model(Threshold(), {"normalize_percentiles": (0, 100)}, Identity())
    image = blobs((70, 90), 8, seed=2)
    plain = segment(image, model, tta=False, device="cpu")
    tta = segment(image, model, tta=True, device="cpu")
    assert plain.visible_labels().tolist() == tta.visible_labels().tolist()


class Blur(torch.nn.Module):
    """An isotropic 9 x 9 mean with zero padding: exactly D4-equivariant, with a receptive field."""

    multiple = 1

    def forward(self, x):
        return torch.nn.functional.avg_pool2d(x, 9, 1, 4, count_include_pad=True)


def test_tta_on_a_non_square_frame_sees_its_edges_as_a_single_view_does():
    # Padding the views square would mirror the blob on the bottom edge into a doubled one.
    model = Model(Threshold(), {"normalize_percentiles": (0, 100)}, Blur())
    image = np.zeros((60, 100), np.float32)
    image[50:, 30:60] = 1.0
    image[20:35, 70:90] = 1.0
    plain = segment(image, model, tta=False, device="cpu")
    tta = segment(image, model, tta=True, device="cpu")
    assert len(plain) == 2
    assert plain.visible_labels().tolist() == tta.visible_labels().tolist()


def test_progress_counts_frames_tiles_and_views():
    model = new_model("embedseg", {"net_options": {"base": 4, "depth": 2, "full_res": 4}})
    calls = []
    found = segment_frames(np.random.rand(3, 40, 40), model, tta=True, device="cpu", progress=lambda d, t: calls.append((d, t)))
    assert len(found) == 3 and all(f.shape == (40, 40) for f in found)
    assert calls[-1] == (24, 24)


def test_segment_refuses_stacks_and_bad_shapes():
    model = new_model("embedseg", {"net_options": {"base": 4, "depth": 2, "full_res": 4}})
    with pytest.raises(ValueError, match="segment_frames"):
        segment(np.zeros((2, 32, 32)), model, device="cpu")
    with pytest.raises(ValueError, match="shape"):
        segment_frames(np.zeros((2, 3, 32, 32, 2)), model, device="cpu")


def test_a_bright_background_is_inverted_only_when_the_model_asks():
    image = blobs((64, 64), 6, seed=3)
    image[0, 0] = 0.0  # bright blobs (1) on a dark background (0)
    plain_model = Model(Threshold(), {"normalize_percentiles": (0, 100)}, Identity())
    asking = Model(Threshold(), {"normalize_percentiles": (0, 100), "invert_bright_background": True}, Identity())
    expected = segment(image, plain_model, tta=False, device="cpu").visible_labels()
    assert expected.max() >= 3
    # Dark blobs on a bright background (brightfield): inverted first, the same cells come out.
    assert np.array_equal(segment(1 - image, asking, tta=False, device="cpu").visible_labels(), expected)
    assert np.array_equal(segment(image, asking, tta=False, device="cpu").visible_labels(), expected)
    # A model that does not ask takes the background for one big object.
    assert len(segment(1 - image, plain_model, tta=False, device="cpu")) == 1


class SizeSpy(Threshold):
    """Threshold that records the size of every frame it post-processes."""

    def __init__(self):
        self.shapes = []

    def postprocess(self, maps, config):
        self.shapes.append(tuple(maps.shape[-2:]))
        return super().postprocess(maps, config)


def discs(shape, radius, n_per_side):
    yy, xx = np.mgrid[: shape[0], : shape[1]]
    image = np.zeros(shape, np.float32)
    step = shape[0] / n_per_side
    for i in range(n_per_side):
        for j in range(n_per_side):
            image[(yy - (i + 0.5) * step) ** 2 + (xx - (j + 0.5) * step) ** 2 <= radius**2] = 1.0
    return image


@pytest.mark.parametrize("radius, expected_passes", [(20, [(200, 200), (67, 67)]), (5, [(200, 200)]), (2, [(200, 200)])])
def test_objects_above_the_training_sizes_are_segmented_again_shrunk(radius, expected_passes):
    spy = SizeSpy()
    sizes = {"median": 10.0, "range": [6.0, 16.0]}  # diameters the model was trained on
    model = Model(spy, {"normalize_percentiles": (0, 100), "object_diameters": sizes}, Identity())
    image = discs((200, 200), radius, 3)
    found = segment(image, model, tta=False, device="cpu")
    assert spy.shapes == expected_passes  # 40 px discs: again at the scale that makes them 16 / 1.2 px
    assert found.shape == (200, 200) and len(found) == 9
    truth = Instances.from_label_image(ndimage.label(image > 0.5)[0])
    assert (found.iou(truth).max(1) >= 0.8).all()
    spy.shapes.clear()
    segment(image, model, tta=False, device="cpu", auto_scale=False)
    assert spy.shapes == [(200, 200)]


def test_a_model_without_recorded_sizes_is_never_rescaled():
    spy = SizeSpy()
    model = Model(spy, {"normalize_percentiles": (0, 100)}, Identity())
    segment(discs((200, 200), 30, 3), model, tta=False, device="cpu")
    assert spy.shapes == [(200, 200)]


class Fragmenting(SizeSpy):
    """Like a network that outgrows its reach: objects over 30 px across come out as their top half."""

    def postprocess(self, maps, config):
        self.shapes.append(tuple(maps.shape[-2:]))
        labels, n = ndimage.label(maps[0].numpy() > 0.5)
        for i in range(1, n + 1):
            rows = np.nonzero((labels == i).any(1))[0]
            if (labels == i).sum() > np.pi * 15**2:
                labels[(rows[0] + rows[-1]) // 2 + 1 : rows[-1] + 1][labels[(rows[0] + rows[-1]) // 2 + 1 : rows[-1] + 1] == i] = 0
        return Instances.from_label_image(labels)


def test_a_frame_is_shrunk_again_while_fragments_hide_the_objects_true_size():
    spy = Fragmenting()
    model = Model(spy, {"normalize_percentiles": (0, 100), "object_diameters": {"median": 10.0, "range": [6.0, 16.0]}}, Identity())
    image = discs((300, 300), 25, 3)
    calls = []
    found = segment(image, model, tta=False, device="cpu", progress=lambda d, t: calls.append((d, t)))
    # Half-discs of 35 px -> shrunk to 0.38 (whole discs of 19 px, still too large) -> 0.27.
    sides = [s[0] for s in spy.shapes]
    assert len(sides) == 3 and sides[0] == 300 and abs(sides[1] - 113) <= 2 and abs(sides[2] - 80) <= 2
    assert calls[-1] == (3, 3)
    truth = Instances.from_label_image(ndimage.label(image > 0.5)[0])
    assert len(found) == 9 and (found.iou(truth).max(1) >= 0.8).all()


class MissesSmallObjects(SizeSpy):
    """A model that cannot see objects under 15 px across."""

    def postprocess(self, maps, config):
        found = super().postprocess(maps, config)
        return found[np.sqrt(4 * found.areas() / np.pi) >= 15]


def test_a_shrunk_pass_that_loses_the_objects_is_not_kept():
    spy = MissesSmallObjects()
    model = Model(spy, {"normalize_percentiles": (0, 100), "object_diameters": {"median": 10.0, "range": [6.0, 16.0]}}, Identity())
    found = segment(discs((200, 200), 20, 3), model, tta=False, device="cpu")
    assert spy.shapes == [(200, 200), (67, 67)]  # at 67 px the discs are 13 px across: none found
    assert found.shape == (200, 200) and len(found) == 9 and np.median(found.areas()) > 1000
