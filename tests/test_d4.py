"""D4 transforms: exact inverses, vectors turned as vectors, equivariance of decoding."""

import numpy as np
import pytest
import torch

from blastoseg import d4
from blastoseg.d4 import FieldLayout


def analytic_field(n: int = 9) -> torch.Tensor:
    """Channels: dy, dx of a displacement field towards a fixed point, then sigma_y, sigma_x, a scalar."""
    ys, xs = torch.meshgrid(torch.arange(n, dtype=torch.float64), torch.arange(n, dtype=torch.float64), indexing="ij")
    target = torch.tensor([2.0, 6.0])
    return torch.stack([target[0] - ys, target[1] - xs, 1 + ys, 10 + xs, ys * n + xs])


LAYOUT = FieldLayout(vectors=((0, 1),), axis_pairs=((2, 3),))


@pytest.mark.parametrize("g", range(8))
def test_inverse_undoes_transform(g):
    field = analytic_field()
    assert torch.equal(d4.inverse(d4.transform(field, g, LAYOUT), g, LAYOUT), field)


@pytest.mark.parametrize("g", range(8))
def test_vectors_still_point_at_the_moved_target(g):
    """A field pointing at pixel P must, once transformed, point at the transformed P everywhere."""
    n = 9
    field = d4.transform(analytic_field(n), g, LAYOUT)
    marker = torch.zeros(1, n, n)
    marker[0, 2, 6] = 1
    ty, tx = (int(v) for v in torch.nonzero(d4.transform(marker, g)[0])[0])
    ys, xs = torch.meshgrid(torch.arange(n), torch.arange(n), indexing="ij")
    assert torch.equal(ys + field[0], torch.full((n, n), ty, dtype=torch.float64))
    assert torch.equal(xs + field[1], torch.full((n, n), tx, dtype=torch.float64))


@pytest.mark.parametrize("g", range(8))
def test_axis_pairs_swap_on_quarter_turns(g):
    field = analytic_field()
    moved = d4.transform(field, g, LAYOUT)
    scalar_y = d4.transform(field[2:3], g)[0]
    scalar_x = d4.transform(field[3:4], g)[0]
    if g % 2:
        assert torch.equal(moved[2], scalar_x) and torch.equal(moved[3], scalar_y)
    else:
        assert torch.equal(moved[2], scalar_y) and torch.equal(moved[3], scalar_x)


@pytest.mark.parametrize("g", range(8))
def test_numpy_and_torch_agree(g):
    a = np.arange(12.0).reshape(3, 4)
    assert np.array_equal(d4.numpy_transform(a, g), d4.transform(torch.from_numpy(a)[None], g)[0].numpy())
    assert np.array_equal(d4.numpy_inverse(d4.numpy_transform(a, g), g), a)


def test_bad_index_is_refused():
    with pytest.raises(ValueError, match="0..7"):
        d4.transform(torch.zeros(1, 2, 2), 8)


def test_equivariant_model_rotates_decoded_centres():
    """An exactly equivariant 'model' (offsets to the brightest pixel) decodes rotated centres."""
    from blastoseg.methods.embedseg.method import METHOD

    config = {**METHOD.default_config(), "min_size": 1}
    image = np.zeros((16, 16), np.float32)
    image[3:6, 9:13] = 1.0

    def fake_maps(img: np.ndarray) -> torch.Tensor:
        ys, xs = np.nonzero(img)
        cy, cx = np.median(ys), np.median(xs)
        yy, xx = np.mgrid[: img.shape[0], : img.shape[1]]
        maps = np.zeros((6, *img.shape), np.float32)
        maps[0], maps[1] = (cy - yy) * img, (cx - xx) * img
        maps[4] = maps[5] = img  # seediness, and its window maximum (seed_window 1)
        return torch.from_numpy(maps)

    base = METHOD.postprocess(fake_maps(image), config)
    assert len(base) == 1
    for g in range(8):
        turned = METHOD.postprocess(fake_maps(d4.numpy_transform(image, g)), config)
        expected = d4.numpy_transform(base.mask(0), g)
        assert np.array_equal(turned.mask(0), expected)
        # and the TTA path: back-transforming the turned maps gives the original maps
        back = d4.inverse(d4.transform(fake_maps(image), g, METHOD.layout), g, METHOD.layout)
        assert torch.allclose(back, fake_maps(image))
