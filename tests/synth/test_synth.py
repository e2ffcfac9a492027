import numpy as np
import pytest
from scipy import ndimage

from blastoseg.synth import Sample, synth_embryo, synth_shapes, synth_timelapse
from blastoseg.synth import bodies as geo
from blastoseg.synth.embryo import cleavage_counts

NO_WIGGLE = np.zeros((0, 3))
ZONA = np.eye(3) / 40.0**2  # a zona too wide to cut anything


def _same(a: Sample, b: Sample) -> bool:
    return (
        np.array_equal(a.image, b.image)
        and a.instances == b.instances
        and np.array_equal(a.fragments, b.fragments)
    )


# ---------------------------------------------------------------------- geometry, by hand
def test_sphere_projects_to_open_disc():
    mat = np.eye(3) / 100.0  # sphere of radius 10 at the embryo centre (50, 50)
    box, t = geo.project_body(np.zeros(3), mat, 10.0, NO_WIGGLE, [], ZONA, (50.0, 50.0), (101, 101))
    full = np.zeros((101, 101))
    full[box[0] : box[2], box[1] : box[3]] = t
    assert full[50, 50] == pytest.approx(20.0)  # thickness = diameter at the centre
    assert full[50, 59] > 0 and full[50, 60] == 0  # radius 9 in, radius 10 on the rim: out
    assert full[56, 57] > 0 and full[56, 58] == 0  # 36 + 49 < 100, 36 + 64 == 100
    assert (full > 0).sum() == sum(1 for y in range(-10, 11) for x in range(-10, 11) if y * y + x * x < 100)


def test_planes_cut_the_body():
    mat = np.eye(3) / 100.0
    # Vertical plane x <= 3: a straight cut in projection.
    cut = [(np.array([0.0, 1.0, 0.0]), 3.0)]
    box, t = geo.project_body(np.zeros(3), mat, 10.0, NO_WIGGLE, cut, ZONA, (50.0, 50.0), (101, 101))
    row = t[50 - box[0]]
    assert row[53 - box[1]] > 0 and row[54 - box[1]] == 0
    # Tilted plane 0.6 x + 0.8 z <= 0 keeps z <= -0.75 x: the sphere reaches it while x < 8.
    tilt = [(np.array([0.0, 0.6, 0.8]), 0.0)]
    box, t = geo.project_body(np.zeros(3), mat, 10.0, NO_WIGGLE, tilt, ZONA, (50.0, 50.0), (101, 101))
    row = t[50 - box[0]]
    assert row[50 - box[1]] == pytest.approx(10.0)  # z from -10 to 0
    assert row[57 - box[1]] > 0 and row[58 - box[1]] == 0 and row[59 - box[1]] == 0


def test_stacked_cells_split_at_the_middle_plane():
    centers = np.array([[0.0, 0.0, -5.0], [0.0, 0.0, 5.0]])
    mats = np.stack([np.eye(3) / 64.0] * 2)
    planes = geo.separating_planes(centers, mats, np.array([8.0, 8.0]))
    (n0, d0), (n1, d1) = planes[0][0], planes[1][0]
    np.testing.assert_allclose(n0, [0, 0, 1])
    assert d0 == pytest.approx(0.0) and d1 == pytest.approx(0.0)
    np.testing.assert_allclose(n1, [0, 0, -1])
    for c, m, p in zip(centers, mats, planes):
        box, t = geo.project_body(c, m, 8.0, NO_WIGGLE, p, ZONA, (20.0, 20.0), (41, 41))
        assert t[20 - box[0], 20 - box[1]] == pytest.approx(13.0)  # 8 + 5: the cap past z = 0 is cut
        assert (t > 0).sum() == sum(1 for y in range(-8, 9) for x in range(-8, 9) if y * y + x * x < 64)


def test_harmonics_match_cosines():
    dy, dx = np.random.default_rng(0).normal(size=(2, 50))
    terms = np.array([[2.0, 0.3, 0.5], [3.0, 0.1, -1.0], [1.0, 0.2, 2.0]])
    theta = np.arctan2(dy, dx)
    expected = sum(a * np.cos(m * theta + p) for m, a, p in terms)
    np.testing.assert_allclose(geo.harmonics(dy, dx, terms), expected, atol=1e-12)


# ---------------------------------------------------------------------- embryos
def test_embryo_is_deterministic_by_seed():
    a, b = synth_embryo(seed=3), synth_embryo(seed=3)
    assert _same(a, b)
    assert not np.array_equal(a.image, synth_embryo(seed=4).image)
    assert _same(synth_embryo(seed=np.random.default_rng(5)), synth_embryo(seed=np.random.default_rng(5)))


@pytest.mark.parametrize("shape", [(256, 256), (180, 240)])
def test_embryo_image_format(shape):
    s = synth_embryo(shape, seed=1)
    assert s.image.shape == shape and s.image.dtype == np.float32
    assert s.image.min() >= 0 and s.image.max() <= 1 and s.image.std() > 0.02
    assert s.fragments.shape == shape and s.fragments.dtype == bool
    assert s.instances.shape == shape and s.classes is None


@pytest.mark.parametrize("n", [1, 2, 3, 5, 8, 16])
def test_n_cells_respected_and_masks_valid(n):
    s = synth_embryo(n_cells=n, seed=10 + n)
    inst = s.instances
    assert len(inst) == n
    assert sorted(inst.depth.tolist()) == list(range(n))
    np.testing.assert_array_equal(inst.scores, 1)
    assert (inst.areas() > 20).all()
    assert (inst.boxes[:, :2] >= 0).all() and (inst.boxes[:, 2:] <= 256).all()
    # Volume is conserved roughly: the cells' projections together cover much more than one cell.
    union = (inst.coverage() > 0).sum()
    assert inst.areas().sum() >= union >= inst.areas().max()


def test_n_cells_out_of_range():
    with pytest.raises(ValueError):
        synth_embryo(n_cells=17)
    with pytest.raises(ValueError):
        synth_embryo(n_cells=0)


def test_random_stage_and_size_vary():
    counts = {len(synth_embryo((128, 128), seed=s).instances) for s in range(12)}
    assert len(counts) >= 4 and min(counts) >= 1 and max(counts) <= 16


def test_cells_overlap_in_projection():
    rates = [synth_embryo(n_cells=n, seed=s).instances.occlusion_rates().max() for n in (2, 4, 8) for s in range(3)]
    assert max(rates) > 0.3
    assert sum(r > 0.05 for r in rates) >= 3


def test_fragments_are_not_instances_and_off_the_cells():
    seen = 0
    for s in range(8):
        sample = synth_embryo(n_cells=4, seed=s)
        assert len(sample.instances) == 4
        cells = sample.instances.coverage() > 0
        assert not (sample.fragments & cells).any()
        # Fragments stay in the zona's cavity, which the cells (pressed on the zona) span.
        centre = np.argwhere(cells).mean(0)
        if sample.fragments.any():
            reach = np.linalg.norm(np.argwhere(cells) - centre, axis=1).max()
            assert np.linalg.norm(np.argwhere(sample.fragments) - centre, axis=1).max() < 1.15 * reach
        seen += int(sample.fragments.any())
    assert seen >= 2


def test_front_cells_show_texture_the_background_lacks():
    s = synth_embryo(n_cells=1, seed=2)
    cell = ndimage.binary_erosion(s.instances.mask(0), iterations=4)
    corner = s.image[:12, :12]
    roughness = np.abs(ndimage.laplace(s.image.astype(float)))
    assert roughness[cell].mean() > np.abs(ndimage.laplace(corner.astype(float))).mean()


# ---------------------------------------------------------------------- time-lapse
def test_timelapse_cleaves():
    frames = synth_timelapse(10, (128, 128), seed=0)
    counts = [len(f.instances) for f in frames]
    assert len(frames) == 10 and counts[0] == 1 and counts[-1] > 1
    assert all(a <= b for a, b in zip(counts, counts[1:]))
    assert all(f.image.shape == (128, 128) for f in frames)
    again = synth_timelapse(10, (128, 128), seed=0)
    assert all(_same(a, b) for a, b in zip(frames, again))
    # One camera and one zona: the frames differ far less than two embryos do.
    step = np.abs(frames[1].image - frames[0].image).mean()
    other = np.abs(synth_timelapse(1, (128, 128), seed=1)[0].image - frames[0].image).mean()
    assert step < other


def test_cleavage_schedule():
    rng = np.random.default_rng(0)
    np.testing.assert_array_equal(cleavage_counts(2, 2, rng), [1, 2])
    for seed in range(5):
        c = cleavage_counts(12, 8, np.random.default_rng(seed))
        assert c[0] == 1 and c[-1] == 8 and (np.diff(c) >= 0).all()
        assert 2 in c  # the first division is seen on its own
    assert [len(f.instances) for f in synth_timelapse(2, (96, 96), seed=4)] == [1, 2]


# ---------------------------------------------------------------------- shapes
def test_shapes_instances_and_classes():
    s = synth_shapes(n_per_class=4, seed=0)
    assert len(s.instances) == 12 and s.image.shape == (256, 256)
    np.testing.assert_array_equal(s.classes, [0] * 4 + [1] * 4 + [2] * 4)
    area = s.instances.areas()
    # Filled areas match the documented sizes (pixel-centre sampling: within 5%).
    np.testing.assert_allclose(area[s.classes == 0], 64**2 * np.sqrt(3) / 4, rtol=0.05)
    np.testing.assert_allclose(area[s.classes == 1], 40 * 64, rtol=0.05)
    np.testing.assert_allclose(area[s.classes == 2], np.pi * 24**2, rtol=0.05)
    assert not s.fragments.any()
    assert _same(s, synth_shapes(n_per_class=4, seed=0))


def test_shape_outlines_visible_on_edges_and_hidden_inside_nearer_shapes():
    s = synth_shapes(seed=1)
    inst, img = s.instances, s.image
    assert set(np.unique(img).tolist()) == {0.0, 1.0}
    labels = inst.visible_labels()
    disc = np.hypot(*np.mgrid[-4:5, -4:5]) <= 4
    masks = inst.to_mask_stack()
    rings = np.stack([m & ~ndimage.binary_erosion(m) for m in masks])
    hidden_outline = 0
    for i, mask in enumerate(masks):
        interior = ndimage.binary_erosion(mask, structure=disc)
        seen = labels == i + 1
        assert seen.any()
        assert (img[rings[i] & seen] == 0).all()  # the visible boundary is outlined
        assert (img[interior & seen] == 1).all()  # no outline, own or hidden, shows inside
        behind = np.delete(rings, i, axis=0).any(0)
        hidden_outline += int((behind & interior & seen).sum())
    assert hidden_outline > 20  # outlines of farther shapes really do run under nearer ones
    front = int(np.argmin(inst.depth))
    assert (labels[inst.mask(front)] == front + 1).all()


def test_masks_sit_on_the_rendered_cell_edges():
    # An offset or transposed mask would put its rim on flat cytoplasm, not on the edge.
    for seed in range(3):
        s = synth_embryo(n_cells=2, seed=seed)
        union = s.instances.coverage() > 0
        rim = union & ~ndimage.binary_erosion(union)
        inner = ndimage.binary_erosion(union, iterations=6)
        edges = ndimage.gaussian_gradient_magnitude(s.image.astype(float), 1.0)
        assert edges[rim].mean() > 1.5 * edges[inner].mean()
        shifted = np.roll(rim, 6, axis=1) & inner
        assert edges[rim].mean() > 1.5 * edges[shifted].mean()
