"""Every CSV the dashboard hands out (the leads export, a chart's numbers, the comparison),
and every small Excel workbook of a page's tables, written in one place. CSVs are written by
DuckDB's `COPY`, so rows stream to a temporary file and never become Python objects, and with
OWASP's CSV-injection defence applied in the SELECT.

The defence (owasp.org/www-community/attacks/CSV_Injection): a text cell that begins with `=`,
`+`, `-`, `@`, a tab or a carriage return gets a leading single quote, so a spreadsheet shows it
as text instead of running it; every text cell is quoted, embedded quotes doubled. Only text
cells: a numeric column's -5 is a number, written bare, and a spreadsheet reads it as one.
Workbooks need no such quote: xlsxwriter writes every string as a string, never a formula.
"""

from __future__ import annotations

import io
import math
import shutil
import tempfile
from collections.abc import Mapping
from datetime import date, datetime, time, timedelta
from pathlib import Path
from typing import Any

import duckdb
import numpy as np
import pandas as pd

from lib.store.ingest.records import sql_literal

# The first characters that make a spreadsheet read a cell as a formula (OWASP); '-' first, so
# that in the RE2 character class below it is a literal, not a range.
FORMULA_STARTS = "-=+@\t\r"
_FORMULA_START_PATTERN = f"^[{FORMULA_STARTS}]"
UTF8_BOM = b"\xef\xbb\xbf"  # Excel reads a UTF-8 CSV as UTF-8 only with it
_TEXT_TYPES = ("VARCHAR",)


def _identifier(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def neutralised(column: str) -> str:
    """SQL for a text column: its value, with a leading quote when it begins like a formula."""
    name = _identifier(column)
    return (
        f"CASE WHEN regexp_matches({name}, {sql_literal(_FORMULA_START_PATTERN)}) "
        f"THEN '''' || {name} ELSE {name} END AS {name}"
    )


def safe_select(
    cursor: duckdb.DuckDBPyConnection, sql: str, params: Mapping[str, Any]
) -> tuple[str, list[str]]:
    """The query with every text column neutralised, and the text columns' names."""
    described = cursor.execute(f"SELECT * FROM ({sql}) LIMIT 0", dict(params)).description
    columns = [(name, str(kind)) for name, kind, *_ in described]
    text = [name for name, kind in columns if kind in _TEXT_TYPES]
    parts = [neutralised(n) if n in text else _identifier(n) for n, _ in columns]
    return f"SELECT {', '.join(parts)} FROM ({sql})", text


def write_csv(
    cursor: duckdb.DuckDBPyConnection, sql: str, params: Mapping[str, Any], path: Path
) -> None:
    """The query's rows as CSV at `path` (header, text cells neutralised and quoted), by COPY."""
    select, text = safe_select(cursor, sql, params)
    options = "FORMAT csv, HEADER"
    if text:
        options += f", FORCE_QUOTE ({', '.join(_identifier(n) for n in text)})"
    cursor.execute(f"COPY ({select}) TO {sql_literal(str(path))} ({options})", dict(params))


def csv_bytes(cursor: duckdb.DuckDBPyConnection, sql: str, params: Mapping[str, Any]) -> bytes:
    """The query's CSV with a UTF-8 BOM. DuckDB streams the rows to a temporary file; the only
    Python object is the finished file's bytes (what st.download_button keeps)."""
    with tempfile.TemporaryDirectory(prefix="dialstatus-export-") as folder:
        body, finished = Path(folder) / "body.csv", Path(folder) / "export.csv"
        write_csv(cursor, sql, params, body)
        with finished.open("wb") as target, body.open("rb") as source:
            target.write(UTF8_BOM)
            shutil.copyfileobj(source, target, 1 << 20)
        body.unlink()
        return finished.read_bytes()


def frame_csv(frame: pd.DataFrame) -> bytes:
    """A small frame's CSV (a chart's numbers, the comparison), through the same writer."""
    with duckdb.connect() as connection:
        connection.register("export_frame", frame)
        return csv_bytes(connection, "SELECT * FROM export_frame", {})


XLSX_MIME = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"


def frames_xlsx(sheets: Mapping[str, pd.DataFrame]) -> bytes:
    """Small frames (a page's tables, as on screen) as one .xlsx workbook, a sheet each (named
    by the key, at most 31 characters), header bold; cells typed text, numbers and dates, never
    formulas or links, and NaN, NA or NaT a blank cell. A date and time is an Excel date shown
    yyyy-mm-dd hh:mm (a day yyyy-mm-dd, a time of day hh:mm:ss), in the wall-clock time the
    table shows: a time zone is dropped, the time kept. The leads export has its own streaming
    writer (`lib.view.metrics.leads.export_xlsx`)."""
    import xlsxwriter

    buffer = io.BytesIO()
    workbook = xlsxwriter.Workbook(
        buffer,
        {
            "in_memory": True,
            "strings_to_formulas": False,
            "strings_to_urls": False,
            "remove_timezone": True,  # Excel has no time zones: keep the wall clock
            "default_date_format": "yyyy-mm-dd hh:mm",
        },
    )
    bold = workbook.add_format({"bold": True})
    day = workbook.add_format({"num_format": "yyyy-mm-dd"})  # a date without a time
    clock = workbook.add_format({"num_format": "hh:mm:ss"})  # a time of day without a date
    for name, frame in sheets.items():
        worksheet = workbook.add_worksheet(name[:31])
        worksheet.write_row(0, 0, [str(c) for c in frame.columns], bold)
        worksheet.freeze_panes(1, 0)
        for index, values in enumerate(frame.itertuples(index=False), start=1):
            for column, value in enumerate(values):
                cell = _xlsx_cell(value)
                is_day = isinstance(cell, date) and not isinstance(cell, datetime)
                shape = day if is_day else clock if isinstance(cell, time) else None
                worksheet.write(index, column, cell, shape)
    workbook.close()
    return buffer.getvalue()


def _xlsx_cell(value: Any) -> Any:
    """A value xlsxwriter writes as typed: NaN, NA and NaT as None (a blank cell); a Timestamp
    (or numpy datetime64) as a datetime in its own wall-clock time, without its zone; numpy
    scalars as Python; a Timedelta, an infinite float and anything not a scalar (a list, a
    dict) as its text."""
    if value is None or isinstance(value, str):
        return value
    if not pd.api.types.is_scalar(value):
        return str(value)
    if pd.isna(value):
        return None
    if isinstance(value, np.datetime64):
        value = pd.Timestamp(value)
    if isinstance(value, np.timedelta64):
        value = pd.Timedelta(value)
    if isinstance(value, pd.Timestamp):
        return value.tz_localize(None).to_pydatetime(warn=False)
    if isinstance(value, pd.Timedelta | timedelta):
        return str(pd.Timedelta(value))  # a duration as text: a date format would misread it
    if isinstance(value, datetime) and value.tzinfo is not None:
        return value.replace(tzinfo=None)
    value = value.item() if isinstance(value, np.generic) else value
    if isinstance(value, float) and math.isinf(value):
        return "inf" if value > 0 else "-inf"  # as the CSV has it; Excel has no infinite number
    return value
