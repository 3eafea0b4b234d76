"""CSV files for spreadsheets: UTF-8 with a byte-order mark, and no cell a spreadsheet would run as a formula.

The console's downloads (GET /api/v1/answers.csv, /api/v1/misses.csv) hold what customers wrote. A cell
that starts with = + - @, a tab or a carriage return is read as a formula by Excel and LibreOffice
("CSV injection"), so such text cells get a leading single quote: shown as text, never run. Without the
byte-order mark Excel reads UTF-8 as the local code page, and Cyrillic or Polish turns into mojibake.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

BOM = "\ufeff"
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


def safe_cell(value: Any) -> Any:
    """Return `value` as a spreadsheet shows it as text: a leading ' before a would-be formula."""
    if isinstance(value, str) and value.startswith(FORMULA_STARTS):
        return f"'{value}"
    return "" if value is None else value


def csv_bytes(columns: Sequence[str], rows: Iterable[Mapping[str, Any]]) -> bytes:
    """Return the rows as a UTF-8 CSV file with a header and a byte-order mark, every cell made safe."""
    out = io.StringIO()
    out.write(BOM)
    writer = csv.DictWriter(out, fieldnames=list(columns))
    writer.writeheader()
    for row in rows:
        writer.writerow({column: safe_cell(row.get(column)) for column in columns})
    return out.getvalue().encode("utf-8")
