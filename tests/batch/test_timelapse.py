"""EmbryoScope folders, natural order and frame times."""

import numpy as np
import pytest

from blastoseg import io
from blastoseg.batch.timelapse import (
    export_timelapses,
    focal_label,
    frame_times,
    is_export,
    natural_key,
)


def test_focal_planes_are_named_as_exported():
    assert [focal_label(f) for f in ("0", 0, "F0", "f-15", "15")] == ["F0", "F0", "F0", "F-15", "F15"]
    with pytest.raises(ValueError, match="--focal"):
        focal_label("middle")


def test_natural_order():
    names = ["10.jpg", "9.jpg", "100.jpg", "1.jpg"]
    assert sorted(names, key=natural_key) == ["1.jpg", "9.jpg", "10.jpg", "100.jpg"]


def test_an_export_is_found_from_its_slide_its_parent_or_one_well(tmp_path):
    for well in ("WELL01", "WELL12"):
        (tmp_path / "exp" / "S1" / well / "F0").mkdir(parents=True)
        io.write_image(tmp_path / "exp" / "S1" / well / "F0" / "001.jpg", np.zeros((32, 32), np.uint8))
    (tmp_path / "exp" / "S1" / "WELL12" / "F15").mkdir()
    for folder in (tmp_path / "exp", tmp_path / "exp" / "S1"):
        assert is_export(folder)
        found, problems = export_timelapses(folder, "F0")
        assert [f.name for f in found] == ["S1_WELL01_F0", "S1_WELL12_F0"] and problems == []
    found, problems = export_timelapses(tmp_path / "exp" / "S1" / "WELL12", "F15")
    assert found == [] and problems[0][1] == "S1_WELL12_F15" and "no image files" in problems[0][2]
    assert not is_export(tmp_path / "exp" / "S1" / "WELL01" / "F0")


def test_frame_times_from_names_then_metadata_then_the_interval(tmp_path):
    from PIL import Image

    named = [tmp_path / f"e_{h}h.jpg" for h in ("12.5", "13", "14.25")]
    assert frame_times(named, 0.5) == ([12.5, 13.0, 14.25], "names")
    stamped = []
    for k, stamp in enumerate(("2024:10:20 08:00:00", "2024:10:20 08:15:00", "2024:10:20 09:00:00")):
        image = Image.fromarray(np.zeros((32, 32), np.uint8))
        exif = image.getexif()
        exif[306] = stamp
        stamped.append(tmp_path / f"RUN{141 + k}.jpg")
        image.save(stamped[-1], exif=exif)
    assert frame_times(stamped, 0.5) == ([0.0, 0.25, 1.0], "metadata")
    plain = [tmp_path / f"{k:03d}.jpg" for k in range(3)]
    assert frame_times(plain, 0.5) == ([0.0, 0.5, 1.0], "interval")
    assert frame_times(plain, None) == (None, "")
    # the run numbers and dates in EmbryoScope names are not hours
    assert frame_times([tmp_path / "D2024.10.20_S01055_I4778_P_WELL06_RUN141.JPG"] * 2, None) == (None, "")
