"""Excel beside every CSV (issue 16): wherever a page offers a table's CSV it offers the same
table as an Excel workbook, side by side, and both files hold the same rows.

The workbooks are read back from their XML here (no spreadsheet library is a dependency): each
cell typed as a spreadsheet reads it (shared and inline text, numbers, booleans, dates by their
number format), and a formula anywhere fails. The pages' downloads are built on click, so the
test records each button's callable as Streamlit registers it and calls it, as a click would.
"""

from __future__ import annotations

import csv
import io
import json
import re
import zipfile
from datetime import datetime, timedelta
from types import SimpleNamespace
from xml.etree import ElementTree
from zoneinfo import ZoneInfo

import numpy as np
import pandas as pd
import pytest
from streamlit.proto.Block_pb2 import Block as BlockProto
from streamlit.runtime.media_file_manager import MediaFileManager

from lib.view import export
from tests.conftest import TZ
from tests.test_pages import app

NS = {"m": "http://schemas.openxmlformats.org/spreadsheetml/2006/main"}
EXCEL_EPOCH = datetime(1899, 12, 30)
BUILT_IN_DATE_FORMATS = {14, 15, 16, 17, 18, 19, 20, 21, 22, 45, 46, 47}
SECRET = "test-secret-0123456789"  # DIALSTATUS_CALLBACK_SECRET in tests/conftest.py


# -- reading a workbook back ---------------------------------------------------------------


def _xml(data: bytes) -> ElementTree.Element:
    return ElementTree.fromstring(data)  # noqa: S314 - the bytes the product just wrote


def _column_index(reference: str) -> int:
    letters = re.match(r"[A-Z]+", reference).group()
    index = 0
    for letter in letters:
        index = index * 26 + ord(letter) - ord("A") + 1
    return index - 1


def _date_styles(archive: zipfile.ZipFile) -> set[int]:
    """The indexes of the cell styles whose number format shows a date or a time."""
    styles = _xml(archive.read("xl/styles.xml"))
    custom = {
        int(f.get("numFmtId")): f.get("formatCode")
        for f in styles.iterfind("m:numFmts/m:numFmt", NS)
    }
    dated = set()
    for index, xf in enumerate(styles.iterfind("m:cellXfs/m:xf", NS)):
        number_format = int(xf.get("numFmtId", "0"))
        code = re.sub(r'"[^"]*"|\[[^\]]*\]', "", custom.get(number_format, "")).lower()
        if number_format in BUILT_IN_DATE_FORMATS or re.search(r"[ydhs]", code):
            dated.add(index)
    return dated


def read_sheets(book: bytes) -> dict[str, list[list]]:
    """Each sheet's rows as typed values (None for a blank cell), rows padded to equal width."""
    with zipfile.ZipFile(io.BytesIO(book)) as archive:
        names = archive.namelist()
        shared = []
        if "xl/sharedStrings.xml" in names:
            table = _xml(archive.read("xl/sharedStrings.xml"))
            shared = [
                "".join(t.text or "" for t in item.iterfind(".//m:t", NS))
                for item in table.iterfind("m:si", NS)
            ]
        dated = _date_styles(archive)
        workbook = _xml(archive.read("xl/workbook.xml"))
        sheets = {}
        for number, sheet in enumerate(workbook.iterfind("m:sheets/m:sheet", NS), start=1):
            xml = _xml(archive.read(f"xl/worksheets/sheet{number}.xml"))
            assert xml.find(".//m:f", NS) is None, "a cell holds a formula"
            rows = []
            for row in xml.iterfind("m:sheetData/m:row", NS):
                cells: dict[int, object] = {}
                for cell in row.iterfind("m:c", NS):
                    kind, style = cell.get("t", "n"), int(cell.get("s", "0"))
                    value = cell.find("m:v", NS)
                    text = None if value is None else value.text
                    if kind == "s":
                        read = shared[int(text)]
                    elif kind == "inlineStr":
                        read = "".join(t.text or "" for t in cell.iterfind(".//m:t", NS))
                    elif kind == "str":
                        read = text or ""
                    elif kind == "b":
                        read = text == "1"
                    elif text is None:
                        read = None
                    elif style in dated:
                        read = EXCEL_EPOCH + timedelta(days=float(text))
                    else:
                        read = float(text)
                    cells[_column_index(cell.get("r"))] = read
                rows.append(cells)
            width = max((max(r) + 1 for r in rows if r), default=0)
            sheets[sheet.get("name")] = [[r.get(i) for i in range(width)] for r in rows]
        return sheets


def read_csv(data: bytes) -> list[list[str]]:
    assert data.startswith(export.UTF8_BOM)
    return list(csv.reader(io.StringIO(data.decode("utf-8-sig"))))


# -- (a) the writer ------------------------------------------------------------------------


def test_a_workbook_holds_dates_numbers_blanks_and_text_as_typed():
    india = ZoneInfo("Asia/Kolkata")
    frame = pd.DataFrame(
        {
            "data_as_of": pd.Series(
                [pd.Timestamp("2026-03-04 10:30:15", tz=india), pd.NaT, None],
                dtype="datetime64[us, Asia/Kolkata]",
            ),
            "plain_time": [datetime(2026, 3, 4, 23, 59), datetime(2026, 1, 1), None],
            "aware_python": pd.Series(
                [datetime(2026, 3, 4, 8, 0, tzinfo=ZoneInfo("America/New_York")), None, None],
                dtype=object,
            ),
            "leads": np.array([3, -5, 0], dtype="int64"),
            "share": [25.5, np.nan, -0.125],
            "note": ["=1+1", "-5", "@SUM(A1)"],
            "flag": [True, False, True],
        }
    )
    book = export.frames_xlsx({"Freshness": frame, "Second": frame.head(1)})
    sheets = read_sheets(book)
    assert list(sheets) == ["Freshness", "Second"]
    header, *rows = sheets["Freshness"]
    assert header == list(frame.columns)
    assert len(rows) == 3
    first, second, third = rows
    # The wall-clock time shown (10:30 in Kolkata), not UTC (05:00), and a real date cell.
    assert isinstance(first[0], datetime)
    assert abs(first[0] - datetime(2026, 3, 4, 10, 30, 15)) < timedelta(milliseconds=1)
    assert abs(first[1] - datetime(2026, 3, 4, 23, 59)) < timedelta(milliseconds=1)
    assert abs(first[2] - datetime(2026, 3, 4, 8, 0)) < timedelta(milliseconds=1)
    assert second[0] is None and third[0] is None  # NaT and None: blank
    assert third[1] is None and second[2] is None
    assert [r[3] for r in rows] == [3.0, -5.0, 0.0]  # numbers, not text
    assert first[4] == 25.5 and second[4] is None and third[4] == -0.125  # NaN blank
    assert [r[5] for r in rows] == ["=1+1", "-5", "@SUM(A1)"]  # text as typed, no formula
    assert [r[6] for r in rows] == [True, False, True]
    assert sheets["Second"] == [header, first]

    with zipfile.ZipFile(io.BytesIO(book)) as archive:
        sheet = archive.read("xl/worksheets/sheet1.xml").decode()
        styles = archive.read("xl/styles.xml").decode()
    assert "<f>" not in sheet
    assert 'formatCode="yyyy-mm-dd hh:mm"' in styles


def test_the_cell_conversion_covers_what_frames_hold():
    cell = export._xlsx_cell
    aware = pd.Timestamp("2026-03-04 10:30", tz="Asia/Kolkata")
    assert cell(aware) == datetime(2026, 3, 4, 10, 30) and cell(aware).tzinfo is None
    assert type(cell(pd.Timestamp("2026-03-04 10:30"))) is datetime
    assert cell(np.datetime64("2026-03-04T10:30")) == datetime(2026, 3, 4, 10, 30)
    for blank in (pd.NaT, pd.NA, np.nan, None, float("nan")):
        assert cell(blank) is None
    assert cell(np.int64(7)) == 7 and type(cell(np.int64(7))) is int
    assert type(cell(np.float32(1.5))) is float and cell(np.bool_(True)) is True
    assert cell("=1+1") == "=1+1"
    assert cell(float("inf")) == "inf" and cell(-np.inf) == "-inf"
    assert cell(["a", 1]) == "['a', 1]"
    assert cell(pd.Timedelta(seconds=90)) == "0 days 00:01:30"


# -- (b) the pages -------------------------------------------------------------------------


@pytest.fixture
def built_on_click(monkeypatch) -> dict[str, tuple[str, str, object]]:
    """Every deferred download a run registers: file id -> (file name, mime, callable)."""
    made: dict[str, tuple[str, str, object]] = {}
    real = MediaFileManager.add_deferred

    def add(self, data_callable, mimetype, coordinates, file_name=None, **kwargs):
        file_id = real(self, data_callable, mimetype, coordinates, file_name=file_name, **kwargs)
        made[file_id] = (file_name, mimetype, data_callable)
        return file_id

    monkeypatch.setattr(MediaFileManager, "add_deferred", add)
    return made


def _parents(node, found=None) -> dict[int, object]:
    """id(download button element) -> the block holding it."""
    found = {} if found is None else found
    for child in getattr(node, "children", {}).values():
        if getattr(child, "type", None) == "download_button":
            found[id(child)] = node
        _parents(child, found)
    return found


def _key(button) -> str:
    return button.proto.id.rpartition("-")[2]


def opened(page: str, params: dict | None = None):
    """The page with every chart's numbers expander open."""
    at = app(page, params=params)
    expanders = [k for k in at.session_state if str(k).endswith("_numbers")]
    for key in expanders:
        at.session_state[key] = True
    at.run()
    assert not at.exception, at.exception
    return at, [k.removesuffix("_numbers") for k in expanders]


# The tables that are no chart's numbers, by page: their download pairs are named here, so a
# page that loses one fails.
TABLES = {
    "agents": {"agents_export", "agents_talk"},
    "sync": {"sync_freshness", "sync_requests", "sync_failed_deliveries"},
}
PAGES = [
    ("overview", None),
    ("campaign", {"section": "Breakdown"}),
    ("campaign", {"section": "Composition"}),
    ("campaign", {"section": "Trends"}),
    ("progress", None),
    ("agents", None),
    ("sync", None),
]
PAGE_IDS = [page + (f"-{params['section']}" if params else "") for page, params in PAGES]


def _same_cell(text: str, value) -> bool:
    """Whether the CSV's text and the workbook's cell say the same thing."""
    if value is None:
        return text == ""
    if isinstance(value, bool):
        return text == ("true" if value else "false")
    if isinstance(value, float):
        return text != "" and float(text) == pytest.approx(value, rel=1e-12, abs=1e-12)
    if isinstance(value, datetime):
        moment = pd.Timestamp(text)
        if moment.tzinfo is not None:  # the CSV names the instant; the workbook shows it in TZ
            moment = moment.tz_convert(TZ).tz_localize(None)
        return abs(moment.to_pydatetime() - value) < timedelta(milliseconds=1)
    # Text: the CSV quotes a formula-like start (OWASP); the workbook keeps it as typed.
    return text == value or (value[:1] in export.FORMULA_STARTS and text == "'" + value)


@pytest.mark.parametrize(("page", "params"), PAGES, ids=PAGE_IDS)
def test_every_csv_has_its_excel_beside_it_with_the_same_rows(seeded, built_on_click, page, params):
    at, charts = opened(page, params)
    buttons = list(at.get("download_button"))
    parents = _parents(at._tree)
    by_key = {_key(b): b for b in buttons}
    csv_keys = [_key(b) for b in buttons if "CSV" in b.label]
    assert csv_keys, "no CSV download on the page"
    expected = set(charts) | TABLES.get(page, set())
    assert {k.removesuffix("_csv") for k in csv_keys} == expected

    for csv_key in csv_keys:
        stem_key = csv_key.removesuffix("_csv")
        assert csv_key == f"{stem_key}_csv"
        twin = by_key.get(f"{stem_key}_xlsx")
        assert twin is not None, f"{csv_key} has no Excel twin"
        assert "Excel" in twin.label
        # Beside it: the two alone in one horizontal container, the CSV first.
        holder = parents[id(by_key[csv_key])]
        assert parents[id(twin)] is holder
        assert list(holder.children.values()) == [by_key[csv_key], twin]
        assert holder.proto.flex_container.direction == BlockProto.FlexContainer.HORIZONTAL

        csv_name, csv_mime, csv_build = built_on_click[by_key[csv_key].proto.deferred_file_id]
        xlsx_name, xlsx_mime, xlsx_build = built_on_click[twin.proto.deferred_file_id]
        assert csv_mime == "text/csv" and xlsx_mime == export.XLSX_MIME
        assert csv_name.endswith(".csv")
        assert xlsx_name == csv_name.removesuffix(".csv") + ".xlsx"

        csv_rows = read_csv(csv_build())
        sheets = read_sheets(xlsx_build())
        assert len(sheets) == 1
        xlsx_rows = next(iter(sheets.values()))
        assert xlsx_rows[0] == csv_rows[0], csv_key  # the same header
        assert len(xlsx_rows) == len(csv_rows) > 1, csv_key  # the same rows, at least one
        for line, (texts, values) in enumerate(zip(csv_rows, xlsx_rows, strict=True)):
            values = values + [None] * (len(texts) - len(values))  # trailing blanks
            assert len(values) == len(texts), (csv_key, line)
            for column, text, value in zip(csv_rows[0], texts, values, strict=True):
                assert _same_cell(text, value), (csv_key, line, column, text, value)


def test_the_sync_tables_downloads_hold_no_secret(seeded, built_on_click, store):
    """A request logged the way the engine logs it (its body, the callback URL replaced) is in
    both files of the request log, and neither file of any Sync table holds the secret."""
    from lib.cloudagent.request import DialStatusRequest
    from lib.sync import SyncEngine

    request = DialStatusRequest(
        campaign_name="Secret check", callback_url=f"https://dash.example/cb/{SECRET}"
    )
    SyncEngine._log_request(
        SimpleNamespace(_store=store, _account="acct-user"), request, kind="manual", state="queued"
    )
    at, _ = opened("sync")
    files = {}
    for button in at.get("download_button"):
        name, _, build = built_on_click[button.proto.deferred_file_id]
        files[name] = build()
    assert set(files) == {
        f"{stem}.{ending}" for stem in TABLES["sync"] for ending in ("csv", "xlsx")
    }
    logged = [r for r in read_csv(files["sync_requests.csv"]) if "Secret check" in r]
    assert len(logged) == 1
    params = json.loads(logged[0][4])
    assert params["callBackUrl"] == "<callback url>" and params["userName"] == "acct-user"
    book = read_sheets(files["sync_requests.xlsx"])["Requests"]
    assert any(row[1] == "Secret check" and row[4] == logged[0][4] for row in book)
    for name, data in files.items():
        if name.endswith(".xlsx"):
            with zipfile.ZipFile(io.BytesIO(data)) as archive:
                data = b"".join(archive.read(n) for n in archive.namelist())
        assert SECRET.encode() not in data, name
        assert b"apiKey" not in data and b"apikey" not in data.lower(), name
