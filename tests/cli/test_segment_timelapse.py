"""Time-lapses from folders: EmbryoScope exports (one per well and focal plane), plain
folders (--as-timelapse), frame times, and the per-well and per-folder tables."""

import math

import numpy as np
import pandas as pd
import pytest

from blastoseg import io
from blastoseg.batch.exports import EVENTS
from blastoseg.cli import main
from blastoseg.measure import cleavage_times

MODEL = "embedseg"  # the fastest shipped model; it finds cells in 96 px synthetic embryos
FRAMES, INTERVAL = 12, 0.5


@pytest.fixture(scope="module")
def export(tmp_path_factory):
    """<slide>/WELLnn/F<focal>/NNN.jpg: 2 wells x 2 focal planes x 12 frames."""
    from blastoseg.synth import synth_timelapse

    root = tmp_path_factory.mktemp("export") / "S01055"
    for w, well in enumerate(("WELL01", "WELL02")):
        for f, focal in enumerate(("F0", "F15")):
            folder = root / well / focal
            folder.mkdir(parents=True)
            for t, sample in enumerate(synth_timelapse(FRAMES, (96, 96), seed=10 * w + f)):
                io.write_image(folder / f"{t + 1:03d}.jpg", (sample.image * 255).astype(np.uint8))
    return root


def _segment(*args):
    return main(["segment", *map(str, args), "-m", MODEL, "--no-tta", "--device", "cpu"])


def test_an_export_gives_one_time_lapse_per_well_with_its_cleavage_times(export, tmp_path, one_thread):
    from blastoseg import segment

    out = tmp_path / "out"
    assert _segment(export, "--frame-interval", INTERVAL, "-o", out) == 0
    assert sorted(p.name for p in out.glob("*_amodal.tif")) == ["S01055_WELL01_F0_amodal.tif", "S01055_WELL02_F0_amodal.tif"]
    for well in ("WELL01", "WELL02"):
        found, record = io.read_amodal(out / f"S01055_{well}_F0_amodal.tif")
        assert len(found) == FRAMES and found[0].shape == (96, 96) and record["frame_times_from"] == "interval"
        # frame by frame, each frame file on its own
        counts = [len(segment(io.read_image(p), MODEL, tta=False, device="cpu")) for p in sorted((export / well / "F0").iterdir())]
        curve = pd.read_csv(out / f"S01055_{well}_F0_frames.csv")
        assert curve["n_cells"].tolist() == counts and curve["time_h"].tolist() == [i * INTERVAL for i in range(FRAMES)]
        assert curve["file"].tolist() == [f"{t + 1:03d}.jpg" for t in range(FRAMES)]
        (row,) = pd.read_csv(out / f"S01055_{well}_F0_embryo.csv").to_dict("records")
        expected = cleavage_times(counts, events=EVENTS)
        assert any(v is not None for v in expected.values())
        for event, t in expected.items():
            assert (math.isnan(row[event]) and t is None) or row[event] == t * INTERVAL
            assert (math.isnan(row[f"{event}_frame"]) and t is None) or row[f"{event}_frame"] == t
        if expected["t3"] is not None:
            assert row["cc2"] == pytest.approx(row["t3"] - row["t2"])

    # one set of tables for the folder: an embryos row per well, the same times
    assert main(["measure", str(out)]) == 0
    embryos = pd.read_csv(out / "measurements_embryos.csv")
    assert embryos["image"].tolist() == ["S01055_WELL01_F0", "S01055_WELL02_F0"]
    per_well = pd.concat([pd.read_csv(out / f"S01055_{w}_F0_embryo.csv") for w in ("WELL01", "WELL02")], ignore_index=True)
    columns = [*(f"t{n}" for n in EVENTS), "cc2", "s2", "s3", "symmetric_2cell"]
    pd.testing.assert_frame_equal(embryos[columns], per_well[columns])
    assert {"source", "model", "model_sha256", "blastoseg_version"} <= set(embryos.columns)
    assert set(pd.read_csv(out / "measurements_cells.csv")["result"]) == {"S01055_WELL01_F0_amodal.tif", "S01055_WELL02_F0_amodal.tif"}


def test_focal_picks_the_plane_and_a_well_without_it_fails_alone(export, tmp_path, capsys, one_thread):
    assert _segment(export, "--focal", "15", "--frame-interval", INTERVAL, "-o", tmp_path / "f15") == 0
    assert sorted(p.name for p in (tmp_path / "f15").glob("*_amodal.tif")) == ["S01055_WELL01_F15_amodal.tif", "S01055_WELL02_F15_amodal.tif"]
    capsys.readouterr()
    assert _segment(export, "--focal", "-15", "-o", tmp_path / "none") == 2  # every well lacks it: bad input
    err = capsys.readouterr().err
    assert "no focal plane F-15" in err and "--focal" in err
    assert _segment(export, "--frame-interval", "0", "-o", tmp_path / "x") == 2
    assert "frame interval must be a positive number of hours between frames (--frame-interval)" in capsys.readouterr().err


def test_a_plain_folder_as_a_time_lapse_takes_its_times_from_the_names(tmp_path, one_thread):
    from blastoseg.synth import synth_timelapse

    folder = tmp_path / "embryo 7"
    folder.mkdir()
    hours = [8.0, 9.0, 9.5, 10.0, 11.5, 12.0]
    for h, sample in zip(hours, synth_timelapse(len(hours), (96, 96), seed=4)):
        io.write_image(folder / f"E7_{h:.1f}h.png", (sample.image * 255).astype(np.uint8))
    # natural order: 10.0h after 9.5h, where sorting the text would put it first
    assert _segment(folder, "--as-timelapse", "-o", tmp_path / "out") == 0
    curve = pd.read_csv(tmp_path / "out" / "embryo 7_frames.csv")
    assert curve["time_h"].tolist() == hours
    (found, record) = io.read_amodal(tmp_path / "out" / "embryo 7_amodal.tif")
    assert len(found) == len(hours) and record["frame_times_from"] == "names"


def test_a_multi_page_tiff_is_still_one_time_lapse(tmp_path, one_thread):
    from blastoseg.synth import synth_timelapse

    stack = np.stack([(s.image * 255).astype(np.uint8) for s in synth_timelapse(4, (96, 96), seed=2)])
    io.write_image(tmp_path / "stack.ome.tif", stack)
    assert _segment(tmp_path / "stack.ome.tif", "-o", tmp_path / "out") == 0
    found, _ = io.read_amodal(tmp_path / "out" / "stack_amodal.tif")
    assert len(found) == 4
    assert main(["measure", str(tmp_path / "out"), "--frame-interval", "0.25"]) == 0
    (row,) = pd.read_csv(tmp_path / "out" / "measurements_embryos.csv").to_dict("records")
    assert row["n_frames"] == 4 and row["time_unit"] == "h"
