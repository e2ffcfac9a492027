"""System errors and notices on the command line: one line each, never a traceback."""

from __future__ import annotations

import errno
import warnings

import pytest

from blastoseg.cli import main
from blastoseg.cli.common import error_message, notices_as_lines


@pytest.mark.parametrize(("error", "text"), [
    (OSError(errno.ENOSPC, "No space left on device", "/out/a.tif"), "/out/a.tif: the disk is full; free some space"),
    (FileExistsError(errno.EEXIST, "File exists", "out"), "out: it exists and is not a folder"),
    (PermissionError(errno.EACCES, "Permission denied", "/x"), "/x: permission denied"),
    (OSError(errno.EIO, "Input/output error", "/x"), "/x: Input/output error"),
    (MemoryError(), "out of memory"),
    (ValueError("two\nlines"), "two lines"),
])
def test_error_messages_are_one_line_with_advice(error, text):
    message = error_message(error)
    assert text in message and "\n" not in message


def test_a_full_disk_exits_1_and_bad_input_2(tmp_path, capsys, monkeypatch):
    import tifffile

    def full(*args, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(tifffile, "imwrite", full)
    assert main(["synth", str(tmp_path / "d"), "--n", "1", "--size", "32"]) == 1
    err = capsys.readouterr().err
    assert "the disk is full" in err and "embryo_0000.tif" in err and "Traceback" not in err
    assert [p for p in tmp_path.rglob("*") if p.is_file()] == []  # nothing half-written


def test_notices_print_as_warning_lines(capsys):
    from blastoseg.notices import Notice

    with notices_as_lines():
        warnings.warn("5 of 9 pixels are NaN", Notice)
        warnings.warn("5 of 9 pixels are NaN", Notice)  # the same notice is said once
    assert capsys.readouterr().err == "blastoseg: warning: 5 of 9 pixels are NaN\n"
