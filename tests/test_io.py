"""Image and amodal-file I/O, and dataset folders."""

from __future__ import annotations

import json
import os

import imageio.v3 as iio
import numpy as np
import pytest
import tifffile

from blastoseg import __version__, io
from blastoseg.inference import preprocess
from blastoseg.instances import Instances
from blastoseg.training import datasets


def _disc(shape: tuple[int, int], cy: float, cx: float, r: float) -> np.ndarray:
    yy, xx = np.mgrid[: shape[0], : shape[1]]
    return (yy - cy) ** 2 + (xx - cx) ** 2 <= r**2


def _overlapping(shape: tuple[int, int] = (40, 48)) -> Instances:
    """Three discs, two overlapping, with non-default scores and depth."""
    stack = np.stack([_disc(shape, 15, 15, 8), _disc(shape, 18, 24, 9), _disc(shape, 32, 40, 5)])
    return Instances.from_mask_stack(stack, scores=[0.3, 0.91, 0.5], depth=[1, 0, 2])


# ---------------------------------------------------------------------- images
@pytest.mark.parametrize("dtype", [np.uint8, np.uint16, np.float32])
def test_tiff_round_trip(tmp_path, dtype):
    image = (np.arange(20 * 30).reshape(20, 30) % 251).astype(dtype) / (1 if dtype != np.float32 else 7)
    image = image.astype(dtype)
    io.write_image(tmp_path / "a.tif", image)
    back = io.read_image(tmp_path / "a.tif")
    assert back.dtype == dtype and np.array_equal(back, image)


def test_png_round_trip_and_frames(tmp_path):
    image = (np.arange(24 * 32).reshape(24, 32) % 256).astype(np.uint8)
    io.write_image(tmp_path / "a.png", image)
    back = io.read_image(tmp_path / "a.png")
    assert back.dtype == np.uint8 and np.array_equal(back, image)
    frames = preprocess.as_frames(back)
    assert frames.shape == (1, 24, 32) and frames.dtype == np.float32
    assert frames[0, 1, 3] == 35.0


def test_read_image_errors_name_the_file(tmp_path):
    with pytest.raises(ValueError, match=r"a\.bmp.*unknown file type"):
        io.read_image(tmp_path / "a.bmp")
    with pytest.raises(FileNotFoundError, match="missing.tif"):
        io.read_image(tmp_path / "missing.tif")
    (tmp_path / "broken.tif").write_bytes(b"not a tiff at all")
    with pytest.raises(ValueError, match="broken.tif"):
        io.read_image(tmp_path / "broken.tif")


def test_rgb_is_converted_with_notice():
    rgb = np.zeros((20, 20, 3), np.float32)
    rgb[..., 1] = 1.0  # pure green: grey = 0.7154 (ITU-R 709 luma weights)
    notes: list[str] = []
    frames = preprocess.as_frames(rgb, notify=notes.append)
    assert frames.shape == (1, 20, 20)
    assert np.allclose(frames, 0.7154, atol=1e-4)
    assert len(notes) == 1 and "greyscale" in notes[0] and "(20, 20, 3)" in notes[0]
    rgba = np.concatenate([rgb, np.full((20, 20, 1), 0.2, np.float32)], axis=-1)
    assert np.allclose(preprocess.as_frames(rgba), 0.7154, atol=1e-4)  # alpha dropped, not blended
    movie = np.stack([rgb, rgb * 0.5])
    assert np.allclose(preprocess.as_frames(movie)[:, 0, 0], [0.7154, 0.3577], atol=1e-4)


def test_frames_from_ints_bool_and_timelapse():
    u16 = np.full((3, 17, 18), 60000, np.uint16)
    frames = preprocess.as_frames(u16)
    assert frames.shape == (3, 17, 18) and frames.dtype == np.float32 and frames.max() == 60000
    b = np.zeros((16, 16), bool)
    b[2, 3] = True
    assert preprocess.as_frames(b).sum() == 1.0


@pytest.mark.parametrize(
    "shape, text",
    [
        ((2, 5, 32, 32), r"\(2, 5, 32, 32\).*Pick one channel or z-plane"),
        ((100,), r"\(100,\)"),
        ((8, 8), r"at least 16x16.*\(8, 8\)"),
        ((32, 32, 2), r"\(32, 32, 2\).*channels"),
    ],
)
def test_bad_shapes_name_the_shape(shape, text):
    with pytest.raises(ValueError, match=text):
        preprocess.as_frames(np.zeros(shape, np.uint8))


def test_bad_dtypes_and_forced_rgb():
    with pytest.raises(ValueError, match="complex"):
        preprocess.as_frames(np.zeros((20, 20), np.complex64))
    with pytest.raises(ValueError, match="object"):
        preprocess.as_frames(np.empty((20, 20), object))
    with pytest.raises(ValueError, match="rgb=True"):
        preprocess.as_frames(np.zeros((20, 20)), rgb=True)


def test_normalize():
    ramp = np.arange(101, dtype=np.float64).reshape(1, 101)
    assert np.allclose(preprocess.normalize(ramp, 0, 100), ramp / 100)
    out = preprocess.normalize(np.arange(1000).reshape(20, 50))
    lo, hi = np.percentile(np.arange(1000), [1, 99.8])
    assert out.dtype == np.float32 and np.isclose(out[0, 0], -lo / (hi - lo))
    flat = preprocess.normalize(np.full((20, 20), 7.0))
    assert np.all(flat == 0) and not np.isnan(flat).any()
    spike = np.zeros((40, 40))
    spike[0, 0] = 5.0  # both percentiles are 0: fall back to min/max
    assert preprocess.normalize(spike)[0, 0] == 1.0


# ---------------------------------------------------------------------- amodal files
def test_amodal_round_trip_single_frame(tmp_path):
    inst = _overlapping()
    path = io.write_amodal(tmp_path / "r.tif", inst, {"method": "test", "model_sha256": "abc"})
    raw = tifffile.imread(path)
    assert raw.dtype == np.uint16 and raw.shape == (2, 40, 48)  # discs 0 and 1 overlap: two planes
    assert set(np.unique(raw)) == {0, 1, 2, 3}
    frames, prov = io.read_amodal(path)
    assert len(frames) == 1 and frames[0] == inst
    assert prov == {"method": "test", "model_sha256": "abc", "blastoseg_version": __version__}
    assert sorted(p.name for p in tmp_path.iterdir()) == ["r.tif"]  # no temp file left
    umask = os.umask(0)
    os.umask(umask)
    assert path.stat().st_mode & 0o777 == 0o666 & ~umask  # readable like any new file, not 0600


def test_amodal_round_trip_sequence_with_varying_counts(tmp_path):
    full = _overlapping()
    seq = [full, Instances.empty(full.shape), full[[2]].with_scores(np.array([0.25]))]
    io.write_amodal(tmp_path / "s.tif", seq)
    assert tifffile.imread(tmp_path / "s.tif").shape == (3, 2, 40, 48)
    frames, prov = io.read_amodal(tmp_path / "s.tif")
    assert len(frames) == 3 and all(a == b for a, b in zip(frames, seq))
    assert frames[2].scores.tolist() == [0.25] and len(frames[1]) == 0
    assert prov["blastoseg_version"] == __version__
    with pytest.raises(ValueError, match="one image shape"):
        io.write_amodal(tmp_path / "x.tif", [full, Instances.empty((10, 10))])


def test_failed_write_keeps_old_file_and_leaves_no_temp(tmp_path, monkeypatch):
    path = io.write_amodal(tmp_path / "r.tif", _overlapping())
    before = path.read_bytes()

    def half_write(file, *args, **kwargs):
        open(file, "wb").write(b"partial")
        raise OSError("disk full")

    monkeypatch.setattr(tifffile, "imwrite", half_write)
    with pytest.raises(OSError, match="disk full"):
        io.write_amodal(path, _overlapping()[[0]])
    assert path.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == ["r.tif"]


def test_read_amodal_plain_label_tiffs(tmp_path):
    labels = np.zeros((20, 20), np.uint16)
    labels[2:5, 2:6] = 4
    labels[10:12, 10:18] = 9
    tifffile.imwrite(tmp_path / "l.tif", labels)
    (inst,), prov = io.read_amodal(tmp_path / "l.tif")
    assert prov == {} and len(inst) == 2
    assert inst.boxes.tolist() == [[2, 2, 5, 6], [10, 10, 12, 18]]
    assert inst.scores.tolist() == [1.0, 1.0] and inst.depth.tolist() == [0, 1]
    movie = np.stack([labels, labels * 0, labels])
    tifffile.imwrite(tmp_path / "m.tif", movie, imagej=True, metadata={"axes": "TYX"})
    frames, _ = io.read_amodal(tmp_path / "m.tif")
    assert [len(f) for f in frames] == [2, 0, 2]
    tifffile.imwrite(tmp_path / "f.tif", np.full((20, 20), 0.5, np.float32))
    with pytest.raises(ValueError, match="integer labels"):
        io.read_amodal(tmp_path / "f.tif")


def test_write_labels(tmp_path):
    inst = _overlapping()
    path = io.write_labels(tmp_path / "v.tif", inst.visible_labels())
    back = tifffile.imread(path)
    assert back.dtype == np.uint16 and np.array_equal(back, inst.visible_labels())
    assert back[18, 20] == 2  # overlap pixel: instance 1 (depth 0) is in front
    with pytest.raises(ValueError, match="integers"):
        io.write_labels(tmp_path / "w.tif", np.zeros((4, 4), np.float32))


def test_metadata_is_plain_json_in_imagej_info(tmp_path):
    io.write_amodal(tmp_path / "r.tif", _overlapping(), {"method": "m"})
    with tifffile.TiffFile(tmp_path / "r.tif") as tif:
        info = json.loads(tif.imagej_metadata["Info"])
    assert info["shape"] == [2, 40, 48]
    assert info["frames"][0]["depth"] == [1, 0, 2]
    assert np.allclose(info["frames"][0]["scores"], [0.3, 0.91, 0.5])


# ---------------------------------------------------------------------- dataset folders
def test_dataset_round_trip(tmp_path):
    inst = _overlapping()
    image = np.linspace(0, 1, 40 * 48, dtype=np.float32).reshape(40, 48)
    datasets.write_item(tmp_path, "b", image, inst)
    datasets.write_item(tmp_path, "a", (image * 255).astype(np.uint8), inst[[0, 2]], visible=True)
    assert datasets.list_dataset(tmp_path) == ["a", "b"]
    item = datasets.read_item(tmp_path, "b")
    assert item.name == "b" and item.image.dtype == np.float32 and np.array_equal(item.image, image)
    assert item.instances == inst
    assert tifffile.imread(tmp_path / "masks" / "a.tif").ndim == 2  # visible: a modal label image
    items = list(datasets.iter_dataset(tmp_path))
    assert [i.name for i in items] == ["a", "b"] and len(items[0].instances) == 2


def test_dataset_accepts_png_images_and_reports_bad_layouts(tmp_path):
    with pytest.raises(ValueError, match="lacks images/ and masks/"):
        datasets.list_dataset(tmp_path)
    (tmp_path / "images").mkdir()
    (tmp_path / "masks").mkdir()
    with pytest.raises(ValueError, match="no image with a matching mask"):
        datasets.list_dataset(tmp_path)
    inst = _overlapping()
    iio.imwrite(tmp_path / "images" / "p.png", np.zeros((40, 48), np.uint8))
    io.write_amodal(tmp_path / "masks" / "p.tif", inst)
    assert datasets.read_item(tmp_path, "p").instances == inst
    iio.imwrite(tmp_path / "images" / "q.png", np.zeros((30, 30), np.uint8))
    io.write_amodal(tmp_path / "masks" / "q.tif", inst)
    with pytest.raises(ValueError, match="must match"):
        datasets.read_item(tmp_path, "q")


def test_read_instances_dir(tmp_path):
    inst = _overlapping()
    io.write_amodal(tmp_path / "x_amodal.tif", inst)
    io.write_labels(tmp_path / "x.tif", inst.visible_labels())  # the amodal file must win
    io.write_labels(tmp_path / "y.tif", inst.visible_labels())
    found = datasets.read_instances_dir(tmp_path)
    assert sorted(found) == ["x", "y"]
    assert found["x"] == inst
    assert len(found["y"]) == 3 and found["y"].areas().sum() < inst.areas().sum()
    datasets.write_item(tmp_path / "ds", "z", np.zeros((40, 48), np.float32), inst)
    assert list(datasets.read_instances_dir(tmp_path / "ds")) == ["z"]
    with pytest.raises(FileNotFoundError, match="nope"):
        datasets.read_instances_dir(tmp_path / "nope")


def test_bright_objects_inverts_only_a_bright_background():
    from blastoseg.inference.preprocess import bright_objects

    dark = np.zeros((8, 8), np.float32)
    dark[2:4, 2:4] = 1.0  # a bright object on a dark background: kept as it is
    assert bright_objects(dark) is dark
    np.testing.assert_array_equal(bright_objects(1 - dark), dark)  # dark object, bright background


# ---------------------------------------------------------------------- damaged files
def _rewrite_info(path, edit) -> None:
    """Rewrite the blastoseg metadata of an amodal file as a hand edit or a bug would."""
    with tifffile.TiffFile(path) as tif:
        data, info = tif.series[0].asarray(), json.loads(tif.imagej_metadata["Info"])
    edit(info)
    tifffile.imwrite(path, data, imagej=True, metadata={"axes": "TZYX" if data.ndim == 4 else "ZYX", "Info": json.dumps(info)})


@pytest.mark.parametrize(("edit", "text"), [
    (lambda info: info.pop("frames"), "no 'frames' list"),
    (lambda info: info["frames"].pop(), "2 frame entries for 3 frames"),
    (lambda info: info.update(shape=[9, 9]), "not \\(L, H, W\\)"),
    (lambda info: info.update(shape=[3, 1, 5, 5]), "does not match"),
    (lambda info: info["frames"][0].update(depth=[]), "frame 0 lacks matching"),
    (lambda info: info["frames"][1].update(embryo=[1, 2]), "'embryo' is not a mapping"),
])
def test_damaged_metadata_is_refused_not_truncated(tmp_path, edit, text):
    full = _overlapping()
    path = io.write_amodal(tmp_path / "s.tif", [full, full[[0]], full[[1, 2]]])
    _rewrite_info(path, edit)
    with pytest.raises(ValueError, match=f"s.tif: its blastoseg metadata is damaged \\(.*{text}"):
        io.read_amodal(path)


def test_embryos_must_come_one_per_frame(tmp_path):
    with pytest.raises(ValueError, match="1 embryo entries for 2 frames"):
        io.write_amodal(tmp_path / "x.tif", [_overlapping(), _overlapping()], embryos=[None])
    assert not (tmp_path / "x.tif").exists()
