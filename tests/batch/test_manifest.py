"""manifest.csv survives a kill mid-line and escapes what a spreadsheet would run."""

from blastoseg.batch.manifest import COLUMNS, NAME, Manifest, read


def _row(name, status="done", **extra):
    return {"input": f"/data/{name}.tif", "kind": "image", "name": name, "status": status, **extra}


def test_rows_are_appended_and_the_last_row_per_input_wins(tmp_path):
    m = Manifest(tmp_path)
    m.record(_row("a", "failed", error="cannot read a.tif"))
    m.record(_row("b"))
    m.record(_row("a"))
    rows = read(tmp_path / NAME)
    assert list(rows) == ["/data/a.tif", "/data/b.tif"] and rows["/data/a.tif"]["status"] == "done"
    assert (tmp_path / NAME).read_text().splitlines()[0] == ",".join(COLUMNS)


def test_a_line_torn_by_a_kill_is_dropped_and_the_file_tidied(tmp_path):
    m = Manifest(tmp_path)
    m.record(_row("a"))
    with open(tmp_path / NAME, "a") as handle:
        handle.write('/data/b.tif,image,b,do')  # the process died here
    again = Manifest(tmp_path)
    assert list(again.rows) == ["/data/a.tif"]
    again.record(_row("c"))
    assert list(read(tmp_path / NAME)) == ["/data/a.tif", "/data/c.tif"]


def test_formula_text_is_escaped_on_disk_and_read_back_exactly(tmp_path):
    m = Manifest(tmp_path)
    m.record({**_row("x"), "input": "=HYPERLINK(\"http://x\")", "error": "-1 is no frame", "name": "'=quoted"})
    text = (tmp_path / NAME).read_text()
    assert "'=HYPERLINK" in text and "'-1 is no frame" in text
    (row,) = read(tmp_path / NAME).values()
    assert row["input"] == "=HYPERLINK(\"http://x\")" and row["error"] == "-1 is no frame" and row["name"] == "'=quoted"


def test_a_foreign_file_is_not_taken_for_a_manifest(tmp_path):
    (tmp_path / NAME).write_text("something,else\n1,2\n")
    assert read(tmp_path / NAME) == {}
