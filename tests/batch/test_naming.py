"""Output names keep the whole input name: only the image suffix goes."""

from pathlib import Path

import pytest

from blastoseg.batch.naming import (
    image_stem,
    is_image_name,
    is_result_name,
    result_paths,
)

EMBRYOSCOPE = "D2024.10.20_S01055_I4778_P_WELL06_RUN141.JPG"


@pytest.mark.parametrize(("name", "stem"), [
    (EMBRYOSCOPE, "D2024.10.20_S01055_I4778_P_WELL06_RUN141"),
    ("a.b.c.tif", "a.b.c"), ("x.TIFF", "x"), ("cells.ome.tif", "cells"), ("cells.OME.TIFF", "cells"),
    ("frame.png", "frame"), ("frame.jpeg", "frame"), ("v1.2_stack.tif", "v1.2_stack"),
])
def test_the_stem_is_the_name_minus_its_image_suffix(name, stem):
    assert image_stem(Path("/some/folder") / name) == stem
    assert is_image_name(name)


def test_other_names_are_not_images():
    for name in ("notes.txt", ".hidden.tif", ".tif", "model.safetensors"):
        assert not is_image_name(name)
    with pytest.raises(ValueError, match="not an image file name"):
        image_stem("notes.txt")


def test_result_files_are_recognised():
    assert is_result_name("x_amodal.tif") and is_result_name("x.y_visible.TIF") and is_result_name("a_zona.tiff")
    assert not is_result_name("x_amodal.png") and not is_result_name("amodal.tif") and not is_result_name("x.tif")


def test_the_amodal_file_completes_a_result():
    paths = result_paths(Path("out"), "D2024.10.20_W", timelapse=True)
    assert list(paths)[-1] == "amodal"
    assert paths["amodal"].name == "D2024.10.20_W_amodal.tif" and paths["embryo_csv"].name == "D2024.10.20_W_embryo.csv"
