"""The pixel budget: huge declared images are refused before anything is allocated."""

from __future__ import annotations

import resource

import imageio.v3 as iio
import numpy as np
import pytest
import tifffile

from blastoseg import io, limits


def test_the_budget_comes_from_the_environment(monkeypatch):
    monkeypatch.delenv(limits.ENV_VAR, raising=False)
    assert limits.max_pixels() == limits.DEFAULT_MAX_PIXELS == 2**28
    monkeypatch.setenv(limits.ENV_VAR, "1e9")
    assert limits.max_pixels() == 10**9
    for bad in ("lots", "0", "-5"):
        monkeypatch.setenv(limits.ENV_VAR, bad)
        with pytest.raises(ValueError, match=limits.ENV_VAR):
            limits.max_pixels()


def test_a_huge_declared_tiff_is_refused_before_reading(tmp_path):
    path = tmp_path / "huge.tif"
    tifffile.imwrite(path, shape=(30000, 30000), dtype=np.uint8)  # 900 MB declared, a few kB on disk
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    with pytest.raises(ValueError, match=r"30000 x 30000 = 900,000,000 pixels.*BLASTOSEG_MAX_PIXELS=900000000"):
        io.read_image(path)
    with pytest.raises(ValueError, match="over the limit"):
        io.read_amodal(path)
    assert resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before < 100_000  # kB: nothing was allocated


def test_the_budget_can_be_raised_and_applies_to_png(tmp_path, monkeypatch):
    tifffile.imwrite(tmp_path / "a.tif", np.zeros((3, 40, 50), np.uint8))
    iio.imwrite(tmp_path / "a.png", np.zeros((40, 150), np.uint8))
    monkeypatch.setenv(limits.ENV_VAR, "5000")
    for name in ("a.tif", "a.png"):
        with pytest.raises(ValueError, match="over the limit of 5,000"):
            io.read_image(tmp_path / name)
    monkeypatch.setenv(limits.ENV_VAR, "6000")
    assert io.read_image(tmp_path / "a.tif").shape == (3, 40, 50)


def test_large_uncompressed_tiffs_are_memory_mapped(tmp_path, monkeypatch):
    image = np.arange(64 * 80, dtype=np.uint16).reshape(64, 80)
    tifffile.imwrite(tmp_path / "plain.tif", image)
    tifffile.imwrite(tmp_path / "zipped.tif", image, compression="zlib")
    monkeypatch.setattr(io, "MEMMAP_BYTES", 1)
    mapped = io.read_image(tmp_path / "plain.tif")
    assert isinstance(mapped, np.memmap) and not mapped.flags.writeable and np.array_equal(mapped, image)
    zipped = io.read_image(tmp_path / "zipped.tif")  # compressed: decoded, not mapped
    assert not isinstance(zipped, np.memmap) and np.array_equal(zipped, image)
    from blastoseg.inference.preprocess import as_frames

    frames = as_frames(mapped)
    assert frames.dtype == np.float32 and not isinstance(frames, np.memmap)  # the one float32 copy
