"""`manifest.csv` in the output folder: one row per input with its outputs, status
(done / skipped / failed), error, model, blastoseg version and seconds.

Only the process that drives a run writes it (workers return their outcomes). Each
outcome is appended as one line and flushed to disk, so a run killed at any moment
loses at most the line being written; the next run reads what is there (a torn last
line is dropped), then rewrites the file atomically with one row per input.
"""

from __future__ import annotations

import csv
import io as _io
import os
from collections.abc import Iterable, Mapping
from pathlib import Path

from blastoseg.io import atomic_write
from blastoseg.tables import escape_text, unescape_text

NAME = "manifest.csv"
COLUMNS = ("input", "kind", "name", "status", "outputs", "error", "model", "model_sha256", "blastoseg_version", "seconds", "finished")
STATUSES = ("done", "skipped", "failed")
Row = dict[str, str]


def _line(row: Mapping[str, object]) -> str:
    buffer = _io.StringIO()
    csv.writer(buffer, lineterminator="\n").writerow([escape_text(str(row.get(c, "") or "")) for c in COLUMNS])
    return buffer.getvalue()


def read(path: Path) -> dict[str, Row]:
    """Input -> its last row; rows cut short by a killed run are dropped."""
    if not path.is_file():
        return {}
    text = path.read_text(encoding="utf-8", errors="replace")
    if text and not text.endswith("\n"):
        text = text[: text.rfind("\n") + 1]  # the torn last line
    rows: dict[str, Row] = {}
    reader = csv.reader(_io.StringIO(text))
    header = next(reader, None)
    if header is None or tuple(header) != COLUMNS:
        return {}
    for values in reader:
        if len(values) == len(COLUMNS):
            row = {c: unescape_text(v) for c, v in zip(COLUMNS, values)}
            if row["status"] in STATUSES:
                rows[row["input"]] = row
    return rows


class Manifest:
    """The manifest of one output folder, loaded and tidied at start."""

    def __init__(self, out_dir: Path) -> None:
        self.path = Path(out_dir) / NAME
        self.rows = read(self.path)
        self.compact()

    def record(self, row: Mapping[str, object]) -> None:
        """Append one input's row and flush it to disk."""
        line = _line(row)
        with open(self.path, "a", encoding="utf-8", newline="") as handle:
            handle.write(line)
            handle.flush()
            os.fsync(handle.fileno())
        self.rows[str(row["input"])] = {c: str(row.get(c, "") or "") for c in COLUMNS}

    def compact(self) -> None:
        """Rewrite the file atomically, one row per input, in the order first seen."""
        text = _line(dict(zip(COLUMNS, COLUMNS))) + "".join(_line(r) for r in self.rows.values())
        atomic_write(self.path, lambda tmp: Path(tmp).write_text(text, encoding="utf-8"))

    def done(self, inputs: Iterable[str]) -> int:
        return sum(self.rows.get(i, {}).get("status") == "done" for i in inputs)
