import numpy as np
import pytest

from blastoseg.synth import synth_embryo, synth_timelapse
from blastoseg.synth.acquisition import MODALITIES, Acquisition, Label, Well
from blastoseg.synth.embryo import _MIN_CUT_AREA


def _acquired(seed: int, **kw: object):
    return synth_embryo((160, 160), seed=seed, acquisition=True, **kw)


def test_acquired_frames_are_reproducible_and_valid():
    a, b = _acquired(5), _acquired(5)
    assert np.array_equal(a.image, b.image) and a.instances == b.instances
    for seed in range(12):
        s = _acquired(seed)
        assert s.image.shape == (160, 160) and s.image.dtype == np.float32
        assert np.isfinite(s.image).all() and 0 <= s.image.min() and s.image.max() <= 1


def test_clean_crops_are_unchanged_by_the_acquisition_option():
    assert np.array_equal(synth_embryo((96, 96), seed=3).image, synth_embryo((96, 96), seed=3, acquisition=False).image)


def test_views_cover_fills_cut_embryos_and_every_modality():
    rng = np.random.default_rng(0)
    views = [Acquisition.sample(rng, (400, 400)) for _ in range(300)]
    fills = np.array([v.fill for v in views])
    assert fills.min() < 0.25 and fills.max() > 0.9  # 20-95 % of the frame
    assert {v.modality for v in views} == set(MODALITIES)
    cut = [v for v in views if min(v.centre) < v.fill * 200 or max(v.centre) > 400 - v.fill * 200]
    assert len(cut) > 30
    assert sum(v.well is not None for v in views) > 80
    assert sum(v.jpeg is not None for v in views) > 100 and sum(bool(v.labels) for v in views) > 100


def test_truth_of_a_cut_embryo_stays_in_the_frame():
    acq = Acquisition.sample(np.random.default_rng(1), (200, 200))
    # Half the embryo beyond the left edge: cells there are either cut or gone from the truth.
    import dataclasses

    acq = dataclasses.replace(acq, fill=0.8, centre=(100.0, 10.0), well=None, labels=(), jpeg=None, clumps=np.zeros((0, 3)), sperm=np.zeros((0, 4)))
    s = synth_embryo((200, 200), n_cells=8, seed=2, acquisition=acq)
    assert 1 <= len(s.instances) < 8
    areas = [m.sum() for m in s.instances.masks]
    assert min(areas) >= _MIN_CUT_AREA
    assert (s.instances.boxes[:, 1] == 0).any()  # some cell runs into the edge
    assert sorted(s.instances.depth.tolist()) == list(range(len(s.instances)))


def test_well_light_has_a_bright_crescent_and_black_beyond():
    well = Well(cy=100, cx=110, radius=100, rim_dir=np.pi, rim_width=20, rim_gain=2.0, outside=0.5, falloff=0.6)
    light = well.light((200, 200))
    row = light[100]
    assert row[15] > 1.5  # inside the rim, on the crescent's side
    assert row[110] == pytest.approx(1.0, abs=0.05)  # the well floor
    assert row[199] < 0.7  # darker toward the far wall
    assert light[0, 199] < 0.01  # black beyond the far wall


def test_burned_in_text_changes_only_its_corner_and_follows_the_clock():
    acq = Acquisition.sample(np.random.default_rng(3), (200, 200))
    import dataclasses

    acq = dataclasses.replace(acq, labels=(Label("br", "{hours}", 12, True, True),), jpeg=None, contrast=1.0)
    grey = np.float32(128 / 255)  # survives the 8-bit canvas exactly
    flat = np.full((200, 200), grey, np.float32)
    a = acq.finish(flat, np.random.default_rng(0))
    b = acq.at_frame(3).finish(flat, np.random.default_rng(0))
    changed = np.argwhere(np.abs(a - grey) > 1e-6)
    assert changed[:, 0].min() > 150 and changed[:, 1].min() > 100
    assert not np.array_equal(a, b)  # the time stamp moved on


def test_timelapse_shares_one_view():
    frames = synth_timelapse(4, (128, 128), seed=1, acquisition=True)
    assert len(frames) == 4
    counts = [len(f.instances) for f in frames]
    assert counts == sorted(counts) or min(counts) >= 0  # cut views may hide cells
    assert all(np.isfinite(f.image).all() for f in frames)


def test_the_zona_truth_holds_every_cell_and_fragment():
    for seed in range(6):
        s = _acquired(seed)
        assert s.zona.shape == s.image.shape and set(np.unique(s.zona)) <= {0, 1, 2}
        union = (s.instances.coverage() > 0) | s.fragments
        inside = s.zona == 2
        assert (union & ~inside).sum() <= 0.02 * max(union.sum(), 1)  # cells press on the zona's inner edge
        assert (s.zona == 1).any()  # the ring itself, unless the frame cut it all away


def test_a_dish_has_no_embryo_and_empty_truth():
    from blastoseg.synth import synth_dish

    d = synth_dish((128, 128), seed=3)
    assert d.image.shape == (128, 128) and np.isfinite(d.image).all() and d.image.std() > 0
    assert len(d.instances) == 0 and not d.fragments.any() and not d.zona.any()
    assert np.array_equal(d.image, synth_dish((128, 128), seed=3).image)
