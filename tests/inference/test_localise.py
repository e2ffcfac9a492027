"""The zona localiser on synthetic well views built here: a textured cluster of cells inside a
thick ring with relief shading, on a medium with a well rim's bright arc, vignetting,
debris, burned-in text, noise and JPEG blocking."""

from __future__ import annotations

import io

import numpy as np
import pytest
from scipy import ndimage as ndi

from blastoseg.inference.embryo import Embryo, zona_labels
from blastoseg.inference.localise import LOCALISERS
from blastoseg.inference.localise import find_embryo as localise


@pytest.fixture(params=LOCALISERS)
def find_embryo(request: pytest.FixtureRequest):
    """Each localiser must pass every test here: frames built by hand, unlike its training data."""
    return lambda frame: localise(frame, request.param)


def _noise(
    rng: np.random.Generator, shape: tuple[int, int], sigma: float
) -> np.ndarray:
    n = ndi.gaussian_filter(rng.standard_normal(shape), sigma)
    return n / (n.std() + 1e-9)


def synthetic_frame(
    shape: tuple[int, int],
    centre: tuple[float, float] | None,
    outer_radius: float = 0.0,
    thickness: float = 0.16,
    contrast: str = "hoffman",
    n_cells: int = 4,
    rim: bool = True,
    seed: int = 0,
) -> np.ndarray:
    """uint8 frame; no embryo when `centre` is None. `thickness` is the zona's, over the outer radius."""
    rng = np.random.default_rng(seed)
    h, w = shape
    side = max(shape)
    yy, xx = np.mgrid[:h, :w].astype(float)
    height = np.zeros(shape)  # optical thickness: relief contrast shows its derivative
    absorb = np.zeros(shape)  # what brightfield shows directly
    if centre is not None:
        cy, cx = centre
        d = np.hypot(yy - cy, xx - cx)
        r_in = outer_radius * (1.0 - thickness)
        zona = np.clip(np.minimum(d - r_in, outer_radius - d) / 2.0, 0.0, 1.0)
        height += zona * (0.8 + 0.15 * _noise(rng, shape, 1.5))
        room = r_in * 0.93  # cells stay inside the perivitelline space
        rc = room * (0.62 if n_cells <= 2 else 0.5 if n_cells <= 4 else 0.38)
        grain = _noise(rng, shape, 1.0)
        for k in range(n_cells):
            a = 2 * np.pi * k / n_cells + rng.uniform(-0.3, 0.3)
            off = (room - rc) * rng.uniform(0.7, 1.0)
            dc = np.hypot(yy - cy - off * np.sin(a), xx - cx - off * np.cos(a)) / (
                rc * rng.uniform(0.9, 1.05)
            )
            dome = np.sqrt(np.clip(1.0 - dc**2, 0.0, 1.0))
            cell = dc < 1.0
            height = np.where(
                cell, np.maximum(height, 1.2 * dome + 0.25 * grain * dome), height
            )
            absorb = np.maximum(absorb, cell * (0.08 + 0.05 * grain))
        for _ in range(3):  # cumulus cells and debris just outside the zona
            a, dist = rng.uniform(0, 2 * np.pi), outer_radius * rng.uniform(1.08, 1.35)
            rb = outer_radius * rng.uniform(0.05, 0.1)
            db = np.hypot(yy - cy - dist * np.sin(a), xx - cx - dist * np.cos(a)) / rb
            blob = db < 1.0
            height = np.where(blob, np.maximum(height, 0.8 + 0.4 * grain), height)
            absorb = np.maximum(absorb, blob * 0.15)

    smooth = ndi.gaussian_filter(height, 1.0)
    if contrast == "hoffman":
        relief = (
            0.9
            * (np.cos(0.5) * ndi.sobel(smooth, 1) + np.sin(0.5) * ndi.sobel(smooth, 0))
            / 8
        )
        frame = 0.5 + relief - 0.3 * absorb
    elif contrast == "dic":
        relief = 1.3 * (ndi.sobel(smooth, 1) + ndi.sobel(smooth, 0)) / 8 / np.sqrt(2)
        frame = 0.5 + relief
    else:  # plain brightfield: dark outlines where the optical thickness changes, darker cells
        outline = np.hypot(ndi.sobel(smooth, 0), ndi.sobel(smooth, 1)) / 8
        frame = 0.55 - 0.7 * outline - 0.8 * absorb
    if rim:
        # The culture well: a bright crescent on one side of a circle about the frame's size,
        # and black beyond the illuminated field on the other.
        wy, wx, wr = 0.5 * h, 0.5 * w + 0.05 * side, 0.42 * side
        dw = np.hypot(yy - wy, xx - wx)
        band = np.clip(1.0 - np.abs(dw - wr - 0.05 * side) / (0.04 * side), 0.0, 1.0)
        crescent = np.clip(-np.cos(np.arctan2(yy - wy, xx - wx)), 0.0, 1.0)
        frame = frame + 0.45 * band * crescent
        stop = np.hypot(yy - 0.45 * h, xx - 0.4 * w) - 0.58 * side
        frame = frame * np.clip(1.0 - stop / (0.05 * side), 0.0, 1.0)
    vignette = 1.0 - 0.35 * ((yy - h / 2) ** 2 + (xx - w / 2) ** 2) / (0.5 * side) ** 2
    frame = frame * vignette + 0.015 * rng.standard_normal(shape)
    # burned-in text: a white box with dark strokes in a corner
    th, tw = max(8, int(0.035 * side)), max(24, int(0.1 * side))
    box = frame[h - th - 4 : h - 4, 4 : 4 + tw]
    box[:] = 1.0
    for k in range(0, tw - 4, max(3, tw // 8)):
        box[2:-2, k + 1 : k + 3] = 0.0
    image = (np.clip(frame, 0.0, 1.0) * 255).astype(np.uint8)
    from PIL import Image  # JPEG blocking, as instruments export

    buf = io.BytesIO()
    Image.fromarray(image).save(buf, format="JPEG", quality=75)
    return np.asarray(Image.open(io.BytesIO(buf.getvalue())))


def _assert_fits(
    found: Embryo | None, centre: tuple[float, float], radius: float, thickness: float
) -> None:
    assert found is not None
    err = np.hypot(found.centre[0] - centre[0], found.centre[1] - centre[1])
    assert err < 0.05 * radius, (found, centre, radius)
    assert abs(found.outer_radius - radius) < 0.08 * radius, (found, radius)
    inner = radius * (1.0 - thickness)
    assert abs(found.inner_radius - inner) < 0.08 * inner, (found, inner)


@pytest.mark.parametrize("contrast", ["hoffman", "dic", "bright"])
def test_centred_embryo_in_a_well_view(contrast: str, find_embryo) -> None:
    frame = synthetic_frame((400, 400), (205, 215), 120, contrast=contrast, seed=1)
    _assert_fits(find_embryo(frame), (205, 215), 120, 0.16)


def test_small_embryo_in_a_wide_field(find_embryo) -> None:
    frame = synthetic_frame((640, 640), (300, 360), 64, n_cells=8, seed=2)
    _assert_fits(find_embryo(frame), (300, 360), 64, 0.16)


def test_tight_crop(find_embryo) -> None:
    frame = synthetic_frame(
        (300, 300), (150, 152), 142, thickness=0.12, n_cells=2, rim=False, seed=3
    )
    found = find_embryo(frame)
    _assert_fits(found, (150, 152), 142, 0.12)
    assert found.is_cut(frame.shape) is False


def test_embryo_cut_by_the_frame_edge(find_embryo) -> None:
    # its centre beyond the frame: more than half of the zona cut off
    frame = synthetic_frame((400, 400), (190, 408), 130, n_cells=3, rim=False, seed=4)
    found = find_embryo(frame)
    _assert_fits(found, (190, 408), 130, 0.16)
    assert found.is_cut(frame.shape)
    y0, _, y1, x1 = found.box(frame.shape)
    assert x1 == 400 and y0 > 0 and y1 < 400


def test_blank_frames_have_no_embryo(find_embryo) -> None:
    assert find_embryo(np.zeros((300, 300), np.uint16)) is None
    noise = np.random.default_rng(5).normal(0.5, 0.05, (300, 300)).astype(np.float32)
    found = find_embryo(noise)
    assert found is None or found.score < 0.1


def test_a_well_without_an_embryo(find_embryo) -> None:
    assert find_embryo(synthetic_frame((400, 400), None, seed=6)) is None


def test_masks_labels_and_measurements() -> None:
    e = Embryo(centre=(50.0, 55.0), outer_radius=40.0, inner_radius=30.0, score=0.9)
    shape = (100, 100)
    inside, zona = e.inside_mask(shape), e.zona_mask(shape)
    assert not (inside & zona).any()
    assert abs(inside.sum() - np.pi * 30**2) < 0.02 * np.pi * 30**2
    assert abs((inside | zona).sum() - np.pi * 40**2) < 0.02 * np.pi * 40**2
    labels = zona_labels(e, shape)
    assert labels.dtype == np.uint8 and set(np.unique(labels)) == {0, 1, 2}
    assert (labels == 2).sum() == inside.sum()
    assert e.box(shape, margin=0.0) == (10, 15, 91, 96)
    assert e.cells_box(shape, 0.9) == (23, 28, 78, 83)  # half-side 27 px around (50, 55)
    assert e.cells_box((60, 100), 1.0) == (20, 25, 60, 86)  # clipped by the frame
    assert not e.is_cut(shape) and e.is_cut((100, 90))
    m = e.measurements(pixel_size_um=0.5)
    assert m["zona_thickness_px"] == 10.0 and m["zona_outer_diameter_um"] == 40.0
    assert "zona_inner_diameter_um" not in e.measurements()


def test_any_dtype_and_size(find_embryo) -> None:
    frame = synthetic_frame((400, 400), (205, 215), 120, seed=1)
    as_uint16 = find_embryo(frame.astype(np.uint16) * 200)
    as_float = find_embryo(frame.astype(np.float64) / 255.0)
    assert as_uint16 is not None and as_float is not None
    assert np.allclose(as_uint16.centre, as_float.centre, atol=1.0)
    from skimage.transform import resize

    thumbnail = (resize(frame, (160, 160), anti_aliasing=True) * 255).astype(np.uint8)
    small = find_embryo(thumbnail)  # upsampled to the working size, not lost
    assert small is not None and abs(small.outer_radius - 48) < 0.1 * 48
