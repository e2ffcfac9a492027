"""Property and unit tests for the `Instances` data model.

Every property is checked against a brute-force reference built from the full
(N, H, W) mask stack the strategy drew, never against `Instances` itself.
"""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from blastoseg.instances import Instances

FAST = settings(
    max_examples=60,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)


# ---------------------------------------------------------------------- strategies
@st.composite
def full_mask(draw: st.DrawFn, shape: tuple[int, int]) -> np.ndarray:
    """One non-empty (H, W) mask: rectangle, ellipse, random blob or single pixel."""
    h, w = shape
    y0, x0 = draw(st.integers(0, h - 1)), draw(st.integers(0, w - 1))
    y1, x1 = draw(st.integers(y0 + 1, h)), draw(st.integers(x0 + 1, w))
    full = np.zeros(shape, bool)
    kind = draw(st.sampled_from(["rect", "ellipse", "blob", "pixel"]))
    if kind == "rect":
        full[y0:y1, x0:x1] = True
    elif kind == "ellipse":
        yy, xx = np.mgrid[y0:y1, x0:x1]
        cy, cx, ry, rx = (y0 + y1 - 1) / 2, (x0 + x1 - 1) / 2, (y1 - y0) / 2, (x1 - x0) / 2
        full[y0:y1, x0:x1] = ((yy - cy) / ry) ** 2 + ((xx - cx) / rx) ** 2 <= 1
    elif kind == "blob":
        full[y0:y1, x0:x1] = draw(hnp.arrays(bool, (y1 - y0, x1 - x0)))
    if not full.any():
        full[y0, x0] = True
    return full


@st.composite
def instances_and_stack(
    draw: st.DrawFn, shape: tuple[int, int] | None = None, max_n: int = 8
) -> tuple[Instances, np.ndarray]:
    """Random Instances plus the full mask stack they were built from.

    Depths come from a tiny range so ties are common; masks are sometimes copies of
    earlier ones; instances are built from loose boxes so `from_masks` must trim them.
    """
    if shape is None:
        shape = (draw(st.integers(1, 24)), draw(st.integers(1, 24)))
    n = draw(st.integers(0, max_n))
    stack = np.zeros((n, *shape), bool)
    for i in range(n):
        if i and draw(st.integers(0, 4)) == 0:
            stack[i] = stack[draw(st.integers(0, i - 1))]
        else:
            stack[i] = draw(full_mask(shape))
    scores = np.array(draw(st.lists(st.floats(0, 1, width=32), min_size=n, max_size=n)), np.float32)
    depth = np.array(draw(st.lists(st.integers(0, 3), min_size=n, max_size=n)), np.int32)
    pairs = []
    for plane in stack:
        ys, xs = np.nonzero(plane)
        y0, x0 = draw(st.integers(0, int(ys.min()))), draw(st.integers(0, int(xs.min())))
        y1, x1 = draw(st.integers(int(ys.max()) + 1, shape[0])), draw(st.integers(int(xs.max()) + 1, shape[1]))
        pairs.append(((y0, x0, y1, x1), plane[y0:y1, x0:x1]))
    return Instances.from_masks(shape, pairs, scores, depth), stack


instances = instances_and_stack().map(lambda pair: pair[0])


@st.composite
def two_on_one_canvas(draw: st.DrawFn) -> tuple[tuple[Instances, np.ndarray], tuple[Instances, np.ndarray]]:
    shape = (draw(st.integers(1, 24)), draw(st.integers(1, 24)))
    return draw(instances_and_stack(shape)), draw(instances_and_stack(shape))


# ---------------------------------------------------------------------- references
def reference_visible(stack: np.ndarray, depth: np.ndarray) -> np.ndarray:
    """Per pixel: 1 + lowest index among the covering instances of minimal depth, 0 if none."""
    if len(stack) == 0:
        return np.zeros(stack.shape[1:], np.int64)
    d = np.where(stack, depth[:, None, None].astype(np.int64), np.iinfo(np.int64).max)
    winners = stack & (d == d.min(0))
    return np.where(stack.any(0), winners.argmax(0) + 1, 0)


def reference_iou(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    inter = (a[:, None] & b[None]).sum((2, 3)).astype(float)
    union = (a[:, None] | b[None]).sum((2, 3)).astype(float)
    return np.divide(inter, union, out=np.zeros_like(inter), where=union > 0)


# ---------------------------------------------------------------------- properties
@FAST
@given(instances_and_stack())
def test_model_matches_drawn_stack_and_boxes_are_tight(pair: tuple[Instances, np.ndarray]) -> None:
    x, stack = pair
    assert len(x) == len(stack)
    assert np.array_equal(x.to_mask_stack(), stack)
    assert np.array_equal(x.areas(), stack.sum((1, 2)))
    assert np.array_equal(x.coverage(), stack.sum(0))
    for i, plane in enumerate(stack):
        ys, xs = np.nonzero(plane)
        assert tuple(x.boxes[i]) == (ys.min(), xs.min(), ys.max() + 1, xs.max() + 1)
        assert np.array_equal(x.mask(i), plane)


@FAST
@given(instances)
def test_mask_stack_round_trip(x: Instances) -> None:
    assert Instances.from_mask_stack(x.to_mask_stack(), x.scores, x.depth) == x


@FAST
@given(instances_and_stack())
def test_layered_packs_without_overlap_and_round_trips(pair: tuple[Instances, np.ndarray]) -> None:
    x, stack = pair
    planes = x.layered()
    assert planes.ndim == 3 and planes.shape[1:] == x.shape and len(planes) >= 1
    for i, plane in enumerate(stack):
        hits = [p for p in range(len(planes)) if (planes[p] == i + 1).any()]
        assert len(hits) == 1  # each instance lives in exactly one plane ...
        assert np.array_equal(planes[hits[0]] == i + 1, plane)  # ... with all its pixels there
    n = len(stack)
    flat = stack.reshape(n, x.shape[0] * x.shape[1])
    overlap = (flat[:, None] & flat[None]).any(2)
    np.fill_diagonal(overlap, False)
    max_degree = int(overlap.sum(1).max()) if n else 0
    assert len(planes) <= max_degree + 1
    assert x.overlap_graph() == [set(np.flatnonzero(row).tolist()) for row in overlap]
    assert Instances.from_layered(planes, x.scores, x.depth) == x
    assert np.array_equal(Instances.from_layered(planes).depth, np.arange(n))


@FAST
@given(instances_and_stack())
def test_visible_labels_follow_depth(pair: tuple[Instances, np.ndarray]) -> None:
    x, stack = pair
    labels = x.visible_labels()
    assert labels.dtype == np.int32
    assert np.array_equal(labels, reference_visible(stack, x.depth))
    assert np.array_equal(labels == 0, stack.sum(0) == 0)
    assert np.array_equal(x.front_order(), np.lexsort((np.arange(len(x)), x.depth)))


@FAST
@given(instances_and_stack())
def test_occluded_and_visible_partition_the_amodal_mask(pair: tuple[Instances, np.ndarray]) -> None:
    x, stack = pair
    ref = reference_visible(stack, x.depth)
    vis = x.visible_masks()
    assert len(vis) == len(x)
    for i, plane in enumerate(stack):
        visible = np.zeros(x.shape, bool)
        y0, x0, y1, x1 = x.boxes[i]
        visible[y0:y1, x0:x1] = vis[i]
        occluded = x.occluded(i)
        assert np.array_equal(visible, ref == i + 1)
        assert not (occluded & visible).any()
        assert np.array_equal(occluded | visible, plane)
    rates = x.occlusion_rates()
    assert np.all((rates >= 0) & (rates <= 1))
    expected = [1 - (ref == i + 1).sum() / plane.sum() for i, plane in enumerate(stack)]
    assert np.allclose(rates, expected)
    seen = [i for i in range(len(x)) if (ref == i + 1).any()]
    modal = x.visible()
    assert np.array_equal(modal.to_mask_stack(), np.array([ref == i + 1 for i in seen], bool).reshape(-1, *x.shape))
    assert np.array_equal(modal.scores, x.scores[seen]) and np.array_equal(modal.depth, x.depth[seen])


@FAST
@given(two_on_one_canvas())
def test_iou_matches_brute_force(pairs: tuple[tuple[Instances, np.ndarray], tuple[Instances, np.ndarray]]) -> None:
    (a, sa), (b, sb) = pairs
    assert np.allclose(a.iou(b), reference_iou(sa, sb))
    self_iou = a.iou(a)
    assert np.allclose(self_iou, reference_iou(sa, sa))
    assert np.array_equal(self_iou, self_iou.T)
    assert np.all(np.diag(self_iou) == 1.0)
    assert np.all((self_iou >= 0) & (self_iou <= 1))


@FAST
@given(hnp.arrays(np.int64, hnp.array_shapes(min_dims=2, max_dims=2, max_side=16), elements=st.sampled_from([-7, 0, 0, 1, 2, 5, 9, 1000])))
def test_label_image_round_trip_relabels_consecutively(labels: np.ndarray) -> None:
    x = Instances.from_label_image(labels)
    values = np.unique(labels[labels != 0])
    expected = np.zeros(labels.shape, np.int64)
    for k, v in enumerate(values, start=1):
        expected[labels == v] = k
    assert len(x) == len(values)
    assert np.array_equal(x.visible_labels(), expected)
    assert np.all(x.occlusion_rates() == 0)


@FAST
@given(instances)
def test_label_image_of_visible_labels_is_the_visible_part(x: Instances) -> None:
    modal = x.visible()
    back = Instances.from_label_image(x.visible_labels(), scores=modal.scores)
    assert back == modal.with_depth(np.zeros(len(modal), np.int32))


@FAST
@given(instances_and_stack(), st.integers(0, 30), st.integers(0, 30))
def test_shift_there_and_back(pair: tuple[Instances, np.ndarray], dy: int, dx: int) -> None:
    x, _ = pair
    h, w = x.shape
    moved = x.shifted(dy, dx, (h + dy, w + dx))
    assert moved.shape == (h + dy, w + dx) and len(moved) == len(x)
    assert np.array_equal(moved.boxes, x.boxes + [dy, dx, dy, dx])
    assert moved.shifted(-dy, -dx, (h, w)) == x
    assert x.cropped(0, 0, h, w) == x


@FAST
@given(instances_and_stack(), st.integers(-30, 30), st.integers(-30, 30))
def test_shift_that_cuts_matches_brute_force(pair: tuple[Instances, np.ndarray], dy: int, dx: int) -> None:
    x, stack = pair
    h, w = x.shape
    ref = np.zeros_like(stack)
    if abs(dy) < h and abs(dx) < w:  # otherwise everything falls off the canvas
        ref[:, max(dy, 0) : h + min(dy, 0), max(dx, 0) : w + min(dx, 0)] = stack[
            :, max(-dy, 0) : h + min(-dy, 0), max(-dx, 0) : w + min(-dx, 0)
        ]
    expected = Instances.from_mask_stack(ref, x.scores, x.depth)
    assert x.shifted(dy, dx) == expected


@FAST
@given(instances_and_stack(), st.data())
def test_crop_matches_brute_force(pair: tuple[Instances, np.ndarray], data: st.DataObject) -> None:
    x, stack = pair
    h, w = x.shape
    y0, x0 = data.draw(st.integers(0, h - 1)), data.draw(st.integers(0, w - 1))
    y1, x1 = data.draw(st.integers(y0 + 1, h)), data.draw(st.integers(x0 + 1, w))
    expected = Instances.from_mask_stack(stack[:, y0:y1, x0:x1], x.scores, x.depth)
    assert x.cropped(y0, x0, y1, x1) == expected


@FAST
@given(instances, st.data())
def test_split_and_concatenate(x: Instances, data: st.DataObject) -> None:
    k = data.draw(st.integers(0, len(x)))
    assert Instances.concatenate([x[:k], x[k:]]) == x
    assert Instances.concatenate([x]) == x
    order = data.draw(st.permutations(range(len(x))))
    picked = x[list(order)]
    assert np.array_equal(picked.to_mask_stack(), x.to_mask_stack()[list(order)])
    keep = x.scores > 0.5
    assert np.array_equal(x[keep].scores, x.scores[keep])


# ---------------------------------------------------------------------- exact cases
def two_squares(depth: tuple[int, int]) -> Instances:
    """A = rows/cols 0..2, B = rows/cols 1..3 on 5x5: 9 px each, 4 px shared."""
    a = ((0, 0, 3, 3), np.ones((3, 3), bool))
    b = ((1, 1, 4, 4), np.ones((3, 3), bool))
    return Instances.from_masks((5, 5), [a, b], scores=[0.9, 0.4], depth=depth)


def test_two_squares_hand_computed() -> None:
    x = two_squares((1, 0))  # B in front of A
    expected = np.array(
        [
            [1, 1, 1, 0, 0],
            [1, 2, 2, 2, 0],
            [1, 2, 2, 2, 0],
            [0, 2, 2, 2, 0],
            [0, 0, 0, 0, 0],
        ]
    )
    assert np.array_equal(x.visible_labels(), expected)
    assert np.allclose(x.occlusion_rates(), [4 / 9, 0.0])
    assert np.allclose(x.iou(x), [[1, 4 / 14], [4 / 14, 1]])
    assert x.occluded(0).sum() == 4 and x.occluded(0)[1:3, 1:3].all()
    assert x.layered().shape == (2, 5, 5)
    assert x.overlap_graph() == [{1}, {0}]
    assert np.array_equal(x.coverage()[1:3, 1:3], np.full((2, 2), 2))


def test_depth_tie_goes_to_lower_index() -> None:
    x = two_squares((0, 0))
    assert np.all(x.visible_labels()[1:3, 1:3] == 1)
    assert np.allclose(x.occlusion_rates(), [0.0, 4 / 9])


def test_identical_masks_fully_hide_the_back_one() -> None:
    sq = np.zeros((1, 4, 4), bool)
    sq[0, 1:3, 1:3] = True
    x = Instances.from_mask_stack(np.concatenate([sq, sq]), depth=[2, 1])
    assert np.allclose(x.occlusion_rates(), [1.0, 0.0])
    assert len(x.visible()) == 1 and x.visible().depth.tolist() == [1]
    assert x.iou(x)[0, 1] == 1.0
    assert x.layered().shape[0] == 2


def test_border_and_single_pixel_instances() -> None:
    labels = np.zeros((4, 6), int)
    labels[0, 0] = 3  # one pixel in the corner
    labels[1:, 5] = 8  # touching the right and bottom borders
    x = Instances.from_label_image(labels)
    assert x.boxes.tolist() == [[0, 0, 1, 1], [1, 5, 4, 6]]
    assert x.cropped(0, 0, 4, 6) == x
    assert len(x.shifted(-1, 0)) == 1 and x.shifted(-1, 0).boxes.tolist() == [[0, 5, 3, 6]]
    assert len(x.shifted(10, 10)) == 0


def test_label_image_with_odd_values() -> None:
    labels = np.array([[0, -4, -4], [2.5, 0, 10**9]])
    x = Instances.from_label_image(labels)
    assert np.array_equal(x.visible_labels(), [[0, 1, 1], [2, 0, 3]])


def test_empty_sets() -> None:
    e = Instances.empty((3, 4))
    assert len(e) == 0 and e.to_mask_stack().shape == (0, 3, 4)
    assert e.layered().shape == (1, 3, 4) and not e.layered().any()
    assert not e.visible_labels().any() and e.occlusion_rates().shape == (0,)
    assert e.iou(two_squares((0, 1)).cropped(0, 0, 3, 4)).shape == (0, 2)
    assert Instances.from_mask_stack(np.zeros((2, 3, 4), bool), scores=[0.1, 0.2]) == e
    assert Instances.from_label_image(np.zeros((3, 4), int)) == e
    assert Instances.from_layered(np.zeros((2, 3, 4), int)) == e
    assert Instances.concatenate([], shape=(3, 4)) == e
    with pytest.raises(ValueError):
        Instances.concatenate([])


def test_invalid_instances_are_rejected() -> None:
    with pytest.raises(ValueError, match="box"):  # mask shape disagrees with box
        Instances((4, 4), [[0, 0, 2, 2]], (np.ones((3, 3), bool),), [1.0], [0])
    with pytest.raises(ValueError, match="outside"):
        Instances((4, 4), [[2, 2, 5, 5]], (np.ones((3, 3), bool),), [1.0], [0])
    with pytest.raises(ValueError, match="tight"):  # box larger than the mask
        Instances((4, 4), [[0, 0, 2, 2]], (np.array([[1, 0], [0, 0]], bool),), [1.0], [0])
    with pytest.raises(ValueError, match="scores"):
        Instances.from_mask_stack(np.ones((2, 3, 3), bool), scores=[1.0])
    with pytest.raises(ValueError):
        two_squares((0, 0)).iou(Instances.empty((6, 6)))


def test_layered_dtype_capacity() -> None:
    stack = np.eye(256, dtype=bool).reshape(256, 16, 16)  # 256 one-pixel instances
    assert Instances.from_mask_stack(stack[:255]).layered(np.uint8).max() == 255
    with pytest.raises(ValueError):
        Instances.from_mask_stack(stack).layered(np.uint8)


def test_memory_grows_with_area_not_image_size() -> None:
    rng = np.random.default_rng(0)
    corners = rng.integers(0, 4000 - 5, size=(500, 2))
    blob = np.array([[0, 1, 0], [1, 1, 1], [0, 1, 0]], bool)
    x = Instances.from_masks((4000, 4000), [((int(y), int(x_), int(y) + 3, int(x_) + 3), blob) for y, x_ in corners])
    assert len(x) == 500 and all(m.shape == (3, 3) for m in x.masks)
    assert sum(m.nbytes for m in x.masks) + x.boxes.nbytes == 500 * 9 + 500 * 16
    # Subsets, shifts and comparisons stay crop-sized too.
    for y in (x[::2], x.shifted(1, 1), x.cropped(0, 0, 2000, 4000), Instances.concatenate([x[:10], x[10:]])):
        assert max(m.size for m in y.masks) <= 9
    iou = x.iou(x)
    assert np.all(np.diag(iou) == 1.0) and iou.shape == (500, 500)
    assert len(x.plane_assignment()) == 500


def test_resized_up_and_down_keeps_shapes_and_order():
    stack = np.zeros((2, 10, 12), bool)
    stack[0, 2:6, 3:9] = True
    stack[1, 4:10, 0:4] = True
    inst = Instances.from_mask_stack(stack, scores=[0.2, 0.9], depth=[1, 0])
    up = inst.resized((20, 24))
    assert up.shape == (20, 24)
    assert np.array_equal(up.to_mask_stack(), stack.repeat(2, 1).repeat(2, 2))
    assert np.array_equal(up.scores, inst.scores) and np.array_equal(up.depth, inst.depth)
    assert up.resized((10, 12)) == inst


def test_convex_fills_a_notch_and_keeps_convex_masks():
    stack = np.zeros((2, 12, 12), bool)
    stack[0, 1:11, 1:11] = True
    stack[0, 1:6, 6:11] = False  # an L: a 10 x 10 square without its 5 x 5 top-right quarter
    stack[1, 2:5, 2:9] = True
    inst = Instances.from_mask_stack(stack, scores=[0.3, 0.8], depth=[1, 0])
    hull = inst.convex()
    # The notch's lower-left half fills (the hull's edge runs corner to corner); the rectangle stays.
    assert 75 + 10 <= hull.areas()[0] <= 75 + 15 and hull.areas()[1] == 21
    assert ((hull.to_mask_stack() | stack) == hull.to_mask_stack()).all()
    assert not hull.mask(0)[1, 10]  # the notch's far corner stays out
    assert np.array_equal(hull.scores, inst.scores) and np.array_equal(hull.depth, inst.depth)
    assert hull.convex() == hull


def test_the_hull_of_a_disc_is_the_disc():
    yy, xx = np.mgrid[:48, :48]
    disc = (yy - 23.5) ** 2 + (xx - 23.5) ** 2 <= 20**2
    hull = Instances.from_mask_stack(disc[None]).convex()
    assert hull.areas()[0] - disc.sum() <= 0.005 * disc.sum()  # the corner hull adds a ring of 2.5 %


def test_classes_default_to_cells_and_survive_every_transform():
    from blastoseg import d4
    from blastoseg.instances import CELL, FRAGMENT

    cells = Instances.from_mask_stack(np.pad(np.ones((1, 10, 10), bool), ((0, 0), (5, 17), (5, 17))))
    piece = np.zeros((1, 32, 32), bool)
    piece[0, 24:28, 24:28] = True
    both = Instances.concatenate([cells, Instances.from_mask_stack(piece).with_class(FRAGMENT)])
    assert cells.classes.tolist() == [CELL] and both.classes.tolist() == [CELL, FRAGMENT]
    for moved in (both.resized((64, 64)), both.shifted(2, 1), both.cropped(0, 0, 30, 30), both[[1, 0]][[1, 0]],
                  d4.transform_instances(both, 3), both.with_scores(np.array([0.5, 0.4])), both.convex()):
        assert moved.classes.tolist() == [CELL, FRAGMENT]
    assert len(both.of_class(FRAGMENT)) == 1 and both.of_class(FRAGMENT).areas().tolist() == [16]
    assert both != Instances.concatenate([cells, Instances.from_mask_stack(piece)])  # the class counts in equality
