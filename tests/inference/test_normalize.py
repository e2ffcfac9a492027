"""Normalisation of any float frame: NaN, infinities and extreme values included."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from blastoseg.inference import preprocess
from blastoseg.notices import Notice

FLOATS = st.sampled_from([np.float16, np.float32, np.float64])


def _frames(dtype) -> st.SearchStrategy[np.ndarray]:
    return hnp.arrays(dtype, hnp.array_shapes(min_dims=2, max_dims=2, min_side=1, max_side=12),
                      elements=hnp.from_dtype(np.dtype(dtype), allow_nan=True, allow_infinity=True, allow_subnormal=True))


@settings(max_examples=300, deadline=None, database=None, suppress_health_check=[HealthCheck.too_slow])
@given(FLOATS.flatmap(_frames), st.floats(0, 50), st.floats(50, 100))
def test_normalize_is_finite_bounded_and_keeps_the_order_of_finite_pixels(frame, low, high):
    finite = np.isfinite(frame)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        if not finite.any():
            with pytest.raises(ValueError, match="no finite pixel"):
                preprocess.normalize(frame, low, high)
            return
        out = preprocess.normalize(frame, low, high)
    assert out.dtype == np.float32 and out.shape == frame.shape
    assert np.isfinite(out).all() and np.abs(out).max() <= preprocess.LIMIT
    assert [w for w in caught if w.category is not Notice] == []  # no numpy overflow warnings leak
    assert any(w.category is Notice for w in caught) == (not finite.all())
    # Normalisation is increasing: sorted finite inputs stay sorted.
    values, mapped = frame[finite].astype(np.float64), out[finite]
    order = np.argsort(values, kind="stable")
    assert np.all(np.diff(mapped[order]) >= 0)
    # Pixels left out read as background (NaN, -inf) or bright (+inf).
    assert np.all(out[np.isnan(frame)] == 0) and np.all(out[frame == -np.inf] == 0) and np.all(out[frame == np.inf] == 1)


@settings(max_examples=100, deadline=None, database=None)
@given(hnp.arrays(np.float32, (16, 16), elements=st.floats(-1e6, 1e6, width=32)))
def test_finite_frames_normalise_as_before(frame):
    """Frames without special values give exactly what the plain formula gives, kept within +-LIMIT."""
    out = preprocess.normalize(frame)
    lo, hi = np.percentile(frame, [1.0, 99.8])
    if hi > lo:
        expected = np.clip((frame - lo) / (hi - lo), -preprocess.LIMIT, preprocess.LIMIT).astype(np.float32)
        assert np.array_equal(out, expected)


def test_one_nan_no_longer_blanks_the_frame():
    frame = np.random.default_rng(0).random((32, 32)).astype(np.float32) * 255
    clean = preprocess.normalize(frame)
    frame[3, 4] = np.nan
    with pytest.warns(Notice, match="1 of 1024 pixels are NaN or infinite"):
        out = preprocess.normalize(frame)
    assert out.std() > 0.2 and out[3, 4] == 0
    others = np.isfinite(frame)
    assert np.abs(out - clean)[others].max() < 0.01  # the other pixels barely move


def test_huge_float64_values_do_not_overflow():
    frame = np.random.default_rng(1).random((32, 32)) * 255
    frame[0, 0] = 1e300
    frames = preprocess.as_frames(frame)
    assert frames.dtype == np.float64 and frames[0, 0, 0] == 1e300  # float32 would have made it inf
    out = preprocess.normalize(frames[0])
    assert np.isfinite(out).all() and out[0, 0] == preprocess.LIMIT
    assert 0 <= np.median(out) <= 1
    assert preprocess.as_frames(frame.clip(0, 255)).dtype == np.float32  # the usual case stays float32


@pytest.mark.parametrize("value", [np.nan, np.inf, -np.inf])
def test_a_frame_without_a_finite_pixel_is_refused(value):
    with pytest.raises(ValueError, match="no finite pixel"):
        preprocess.as_frames(np.full((20, 20), value, np.float32))
    movie = np.ones((5, 20, 20), np.float32)
    movie[1] = value
    with pytest.raises(ValueError, match="frame 1 of 5 holds no finite pixel"):
        preprocess.as_frames(movie)


def test_three_planes_are_read_as_frames_with_a_notice():
    notes: list[str] = []
    assert preprocess.as_frames(np.zeros((3, 20, 20)), notify=notes.append).shape == (3, 20, 20)
    assert "read as 3 frames" in notes[0] and "transpose(1, 2, 0)" in notes[0]
    with pytest.warns(Notice, match="read as 4 frames"):
        preprocess.as_frames(np.zeros((4, 20, 20)))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        preprocess.as_frames(np.zeros((5, 20, 20)))  # an ordinary time-lapse: nothing to say
