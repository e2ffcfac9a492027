"""The file-level API: what `segment_file` writes beside a result, and `measure_files` reads back."""

from pathlib import Path

import numpy as np
import pytest
import tifffile

from blastoseg.files import measure_files, segment_file
from blastoseg.inference.embryo import Embryo
from blastoseg.inference.predict import FrameResult
from blastoseg.instances import FRAGMENT, Instances
from blastoseg.model import new_model


def test_fragments_and_zona_are_written_and_measured(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import blastoseg.inference.predict as predict

    cell = np.zeros((1, 64, 64), bool)
    cell[0, 10:40, 10:40] = True
    piece = np.zeros((64, 64), bool)
    piece[45:50, 45:50] = True
    found = FrameResult(Instances.from_mask_stack(cell), Embryo((32.0, 32.0), 30.0, 26.0, 0.8),
                        Instances.from_mask_stack(piece[None]).with_class(FRAGMENT))
    monkeypatch.setattr(predict, "analyse_frames", lambda *a, **k: [found])
    tifffile.imwrite(tmp_path / "D2024.10.20_RUN1.tif", np.zeros((64, 64), np.uint8))
    amodal, _, n = segment_file(tmp_path / "D2024.10.20_RUN1.tif", new_model("embedseg"), tmp_path)
    assert n == 1
    fragments = tifffile.imread(amodal.with_name(amodal.name.replace("_amodal", "_fragments")))
    np.testing.assert_array_equal(fragments == 1, piece)
    zona = tifffile.imread(amodal.with_name(amodal.name.replace("_amodal", "_zona")))
    assert zona[32, 32] == 2 and zona[32, 32 + 28] == 1
    row = measure_files([amodal], pixel_size=2.0, frame_interval_h=None).frames.iloc[0]
    assert row["n_cells"] == 1 and row["n_fragments"] == 1 and row["fragment_area_px"] == 25
    assert row["fragment_area_um2"] == pytest.approx(100.0)
    assert row["fragmentation_pct"] == pytest.approx(100 * 25 / 925, abs=0.01) and row["fragmentation_grade"] == "<10%"
    assert row["zona_outer_diameter_px"] == pytest.approx(60.0)
