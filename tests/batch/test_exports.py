"""Embryo rows: cleavage times, cc2, s2, s3 and symmetry; CSV cells are safe to open."""

import math

import pandas as pd

from blastoseg.batch.exports import embryo_row
from blastoseg.tables import escape_table, escape_text, unescape_text


def _frames(counts, differences=None):
    return pd.DataFrame({"n_cells": counts, "diameter_difference": differences or [0.1] * len(counts)})


def test_cleavage_times_in_hours_and_the_intervals_between_them():
    counts = [1, 1, 2, 2, 3, 3, 4, 4, 5, 5, 8, 8]
    times = [20.0 + 0.5 * t for t in range(len(counts))]
    row = embryo_row(_frames(counts), times)
    assert row["time_unit"] == "h"
    assert (row["t2"], row["t3"], row["t4"], row["t5"], row["t8"]) == (21.0, 22.0, 23.0, 24.0, 25.0)
    assert (row["cc2"], row["s2"], row["s3"]) == (1.0, 1.0, 1.0)
    assert row["t6"] == 25.0 and row["t2_frame"] == 2 and row["max_cells"] == 8


def test_without_times_they_are_frames_and_unreached_events_are_empty():
    row = embryo_row(_frames([1, 2, 2, 2]), None)
    assert row["time_unit"] == "frame" and row["t2"] == 1.0 and math.isnan(row["t3"]) and math.isnan(row["cc2"])


def test_symmetry_at_each_stage_is_the_median_frame():
    row = embryo_row(_frames([2, 2, 2, 4, 4], [0.1, 0.3, 0.2, 0.5, 0.4]), None)
    assert row["frames_2cell"] == 3 and row["diameter_difference_2cell"] == 0.2 and row["symmetric_2cell"] is True
    assert row["symmetric_4cell"] is False and row["symmetric_8cell"] is None


def test_formula_cells_are_escaped_and_numbers_are_not():
    table = pd.DataFrame({"image": ["=cmd()", "+1", "@x", "-y", "ok", "'=z"], "area": [-1, 2, 3, 4, 5, 6]})
    safe = escape_table(table)
    assert safe["image"].tolist() == ["'=cmd()", "'+1", "'@x", "'-y", "ok", "''=z"]
    assert safe["area"].tolist() == [-1, 2, 3, 4, 5, 6]
    assert [unescape_text(v) for v in safe["image"]] == table["image"].tolist()
    assert escape_text(3.5) == 3.5
