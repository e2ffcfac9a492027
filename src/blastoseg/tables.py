"""CSV tables a spreadsheet can open safely.

A text cell that begins with `=`, `+`, `-` or `@` (or a tab or carriage return) is read
by Excel and LibreOffice as a formula, and a file name chosen by someone else could run
one (CSV injection). Such cells are written with a leading `'`, which spreadsheets show
as text; `unescape_text` undoes it for blastoseg's own reading.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import pandas as pd

FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


def escape_text(value: Any) -> Any:
    """`value` with a leading `'` if it is text a spreadsheet would run as a formula (or
    text that already starts with `'` before such a character, so unescaping is exact)."""
    if not isinstance(value, str) or not value:
        return value
    if value.startswith(FORMULA_STARTS) or (value.startswith("'") and value[1:].startswith(FORMULA_STARTS)):
        return "'" + value
    return value


def unescape_text(value: str) -> str:
    """The text `escape_text` was given."""
    if value.startswith("'") and value[1:].startswith((*FORMULA_STARTS, "'")):
        return value[1:]
    return value


def escape_table(table: pd.DataFrame) -> pd.DataFrame:
    """A copy with every text cell escaped; numbers (negative ones too) are left as numbers."""
    from pandas.api.types import is_numeric_dtype

    out = table.copy()
    for column in out.columns:
        if not is_numeric_dtype(out[column]):  # object or pandas' own string dtype
            out[column] = out[column].map(escape_text)
    return out


def write_table(table: pd.DataFrame, path: str | os.PathLike) -> Path:
    """Write `table` as CSV, escaped, atomically."""
    from blastoseg.io import atomic_write

    safe = escape_table(table)
    return atomic_write(Path(path), lambda tmp: safe.to_csv(tmp, index=False))
