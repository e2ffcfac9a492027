"""Framing: embryo models segment the window around the objects a quick pass found."""

import numpy as np
import pytest

from blastoseg.inference import framing
from blastoseg.inference.predict import segment
from blastoseg.instances import Instances
from blastoseg.model import Model
from blastoseg.settings import PipelineSettings
from blastoseg.training.sources import as_model_sees
from tests.inference.test_predict import Identity, SizeSpy


def test_the_window_puts_the_box_at_the_asked_fill_inside_the_frame():
    assert framing.window((50, 50, 100, 100), (200, 200), 0.5) == (25, 25, 125, 125)
    assert framing.window((0, 150, 40, 200), (200, 200), 0.5) == (0, 100, 100, 200)  # pushed inside
    assert framing.window((10, 10, 190, 120), (200, 200), 0.7) is None  # nearly the whole frame
    with pytest.raises(ValueError, match="frame_fill"):
        framing.window((0, 0, 10, 10), (100, 100), 0.0)


def test_the_box_of_small_instances_in_frame_coordinates_is_that_of_their_resized_masks():
    labels = np.zeros((64, 48), np.int32)
    labels[5:17, 7:20], labels[30:41, 22:47] = 1, 2
    small = Instances.from_label_image(labels)
    for shape in ((200, 150), (64, 48), (50, 31)):
        assert framing.objects_box(small, shape) == framing.objects_box(small.resized(shape))
    assert framing.objects_box(Instances.empty((64, 48)), (200, 150)) is None


def cluster(shape=(200, 200), radius=8):
    """Three discs packed into a 40 px corner of the frame."""
    yy, xx = np.mgrid[: shape[0], : shape[1]]
    labels = np.zeros(shape, np.int32)
    for i, (cy, cx) in enumerate([(40, 40), (40, 62), (60, 51)], 1):
        labels[(yy - cy) ** 2 + (xx - cx) ** 2 <= radius**2] = i
    return labels


@pytest.mark.parametrize("tta, progress_end", [(False, (2, 2)), (True, (9, 9))])
def test_a_small_embryo_is_segmented_again_in_its_window(tta, progress_end):
    labels = cluster()
    spy = SizeSpy()
    model = Model(spy, {"normalize_percentiles": (0, 100), "working_size": 64, "frame_fill": 0.7}, Identity())
    calls = []
    found = segment((labels > 0).astype(np.float32), model, tta=tta, device="cpu", progress=lambda d, t: calls.append((d, t)))
    # The quick pass sees the whole frame at 64 px, the second the 56 px window around the
    # discs at 64 px (TTA views are averaged here, so each pass post-processes once).
    assert spy.shapes == [(64, 64), (64, 64)]
    assert calls[-1] == progress_end
    truth = Instances.from_label_image(labels)
    assert found.shape == (200, 200) and len(found) == 3
    assert (found.iou(truth).max(1) >= 0.8).all()
    # Without framing the discs are 5 px across at the working size and come out coarser.
    plain = segment((labels > 0).astype(np.float32), Model(SizeSpy(), {"normalize_percentiles": (0, 100), "working_size": 64}, Identity()), tta=False, device="cpu")
    assert found.iou(truth).max(1).mean() > plain.iou(truth).max(1).mean()


def test_objects_filling_the_frame_take_one_pass_without_tta():
    labels = cluster()[20:80, 20:80]
    spy = SizeSpy()
    model = Model(spy, {"normalize_percentiles": (0, 100), "working_size": 60, "frame_fill": 0.7}, Identity())
    calls = []
    found = segment((labels > 0).astype(np.float32), model, tta=False, device="cpu", progress=lambda d, t: calls.append((d, t)))
    assert spy.shapes == [(60, 60)] and calls[-1] == (1, 1) and len(found) == 3


def test_training_pairs_are_framed_as_predict_frames_them():
    labels = cluster()
    image = (labels > 0).astype(np.float32)
    settings = PipelineSettings(working_size=64, frame_fill=0.7)
    seen, inst = as_model_sees(image, Instances.from_label_image(labels), settings)
    assert seen.shape == (64, 64) and len(inst) == 3
    # The discs' 38 px box spans 0.7 of the window: 0.7 x 64 px at the working size.
    y0, x0 = inst.boxes[:, :2].min(0)
    y1, x1 = inst.boxes[:, 2:].max(0)
    assert abs(max(y1 - y0, x1 - x0) - 0.7 * 64) <= 2
    # Jittered (training) windows still hold every object.
    for seed in range(5):
        _, jittered = as_model_sees(image, Instances.from_label_image(labels), settings, np.random.default_rng(seed))
        assert len(jittered) == 3


def test_a_framing_model_trains_on_windows_of_frames_twice_its_working_size():
    from blastoseg.training.sources import SyntheticSource

    rng = np.random.default_rng(0)
    framed = SyntheticSource("embryo", 48).for_model(PipelineSettings(working_size=48, frame_fill=0.7))
    assert framed.frame(rng)[0].shape == (96, 96)
    image, inst = framed.draw(rng)
    assert max(image.shape) == 48 and len(inst) >= 1
    y0, x0 = inst.boxes[:, :2].min(0)
    y1, x1 = inst.boxes[:, 2:].max(0)
    assert max(y1 - y0, x1 - x0) >= 0.3 * 48  # the window's side is the cells' box over the jittered fill
    plain = SyntheticSource("embryo", 48).for_model(PipelineSettings(working_size=48))
    assert plain.frame(rng)[0].shape == (48, 48)
