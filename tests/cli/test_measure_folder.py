"""`blastoseg measure RESULTS_DIR`: one set of tables for a folder, with provenance, safe
to open in a spreadsheet."""

import csv

import numpy as np

from blastoseg import io
from blastoseg.cli import main


def test_a_results_folder_gives_cells_frames_and_embryos_tables(tmp_path, capsys, one_thread):
    from blastoseg.synth import synth_embryo

    images = tmp_path / "in"
    images.mkdir()
    for k, name in enumerate(["=1+1.png", "@cmd.png", "plain.png"]):
        io.write_image(images / name, (synth_embryo((96, 96), seed=k).image * 255).astype(np.uint8))
    out = tmp_path / "out"
    assert main(["segment", str(images), "-m", "embedseg", "--no-tta", "--device", "cpu", "-o", str(out)]) == 0
    assert main(["measure", str(out), "--pixel-size", "0.5"]) == 0
    assert "3 frames, 0 time-lapses" in capsys.readouterr().out
    with open(out / "measurements_frames.csv", newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert [r["image"] for r in rows] == ["'=1+1", "'@cmd", "plain"]  # escaped: no formula runs
    assert rows[0]["source"].endswith("in/=1+1.png")
    assert {r["model"] for r in rows} == {"embedseg"} and {len(r["model_sha256"]) for r in rows} == {64}
    assert all(r["blastoseg_version"] and r["segmented_with"] for r in rows)
    with open(out / "measurements_cells.csv", newline="") as handle:
        cells = list(csv.DictReader(handle))
    assert cells and {r["result"] for r in cells} <= {"'=1+1_amodal.tif", "'@cmd_amodal.tif", "plain_amodal.tif"}
    assert (out / "measurements_embryos.csv").read_text().startswith("image,n_frames,time_unit,t2,")
    # measured again: the tables already there are kept, the new ones take the next free name
    assert main(["measure", str(out)]) == 0
    assert (out / "measurements-2_cells.csv").is_file() and (out / "measurements-2_embryos.csv").is_file()


def test_an_empty_folder_is_a_one_line_error(tmp_path, capsys):
    assert main(["measure", str(tmp_path)]) == 2
    assert "holds no *_amodal.tif results" in capsys.readouterr().err
