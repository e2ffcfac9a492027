"""Inputs are checked from their headers, before any model loads."""

import numpy as np
import pytest

from blastoseg import io
from blastoseg.batch.inputs import (
    Task,
    check,
    collect,
    frames_shape,
    header_shape,
    refuse_collisions,
)


def test_headers_give_shapes_without_decoding(tmp_path):
    io.write_image(tmp_path / "a.tif", np.zeros((3, 40, 50), np.uint16))
    io.write_image(tmp_path / "b.png", np.zeros((40, 50, 3), np.uint8))
    io.write_image(tmp_path / "c.jpg", np.zeros((40, 50), np.uint8))
    assert header_shape(tmp_path / "a.tif") == (3, 40, 50)
    assert header_shape(tmp_path / "b.png") == (40, 50, 3) and frames_shape((40, 50, 3), "b") == (1, 40, 50)
    assert header_shape(tmp_path / "c.jpg") == (40, 50)
    (tmp_path / "d.jpg").write_bytes(b"not a jpeg")
    with pytest.raises(ValueError, match=r"cannot read .*d\.jpg: it is damaged or not a JPG file"):
        header_shape(tmp_path / "d.jpg")
    with pytest.raises(ValueError, match="at least 16x16"):
        frames_shape((8, 8), "tiny")
    with pytest.raises(ValueError, match="expected a 2D frame"):
        frames_shape((2, 3, 40, 50), "5d")


def test_a_time_lapse_of_mixed_sizes_is_refused(tmp_path):
    io.write_image(tmp_path / "1.png", np.zeros((40, 50), np.uint8))
    io.write_image(tmp_path / "2.png", np.zeros((40, 60), np.uint8))
    (task,) = collect([tmp_path], as_timelapse=True, notice=lambda m: None)
    assert "differ in size" in check(task).problem


def test_collisions_name_every_input():
    tasks = [Task("/a/x.tif", "x", ("/a/x.tif",)), Task("/b/x.png", "x", ("/b/x.png",)), Task("/c/y.tif", "y", ("/c/y.tif",))]
    with pytest.raises(ValueError, match="/a/x.tif and /b/x.png would both write x_amodal.tif"):
        refuse_collisions(tasks)


def test_results_and_other_files_are_skipped_with_a_notice(tmp_path):
    io.write_image(tmp_path / "a.tif", np.zeros((32, 32), np.uint8))
    io.write_image(tmp_path / "a_visible.tif", np.zeros((32, 32), np.uint16))
    (tmp_path / "notes.txt").write_text("hello")
    notes = []
    tasks = collect([tmp_path / "a.tif", tmp_path / "a_visible.tif", tmp_path / "notes.txt", tmp_path], notice=notes.append)
    assert [t.name for t in tasks] == ["a"]  # given twice (file and folder), segmented once
    assert any("a_visible.tif is a blastoseg result" in n for n in notes) and any("notes.txt is not an image" in n for n in notes)
    with pytest.raises(FileNotFoundError, match="no image file or folder"):
        collect([tmp_path / "missing.tif"])


def test_the_light_copies_of_the_size_limits_match_the_pipeline():
    """The input check and the option check keep torch out of the driving process; their
    limits are the pipeline's."""
    from blastoseg.batch import inputs
    from blastoseg.cli import segment
    from blastoseg.inference import predict, preprocess

    assert inputs.MIN_SIDE == preprocess.MIN_SIDE and segment.TILE_MIN == predict.MIN_SIDE
