"""Exports cannot attack the person who opens them: every CSV the dashboard hands out (the leads
export, a chart's numbers, the comparison) is read back with the csv module, and no text cell
may begin like a formula; the Excel export stops at its row limit and says so."""

from __future__ import annotations

import csv
import io
import re
import zipfile
from pathlib import Path

import pandas as pd
import pytest
from streamlit.testing.v1 import AppTest

from lib.view import export, metrics, ui
from lib.view.filters import Filters
from tests.conftest import CAMPAIGNS, TZ, insert_rows
from tests.support.server import PROJECT_ROOT

HOSTILE = ('=HYPERLINK("http://x","y")', "+1", "-2+3", "@SUM(A1)", "\tx", "\rx")
HOSTILE_CAMPAIGN = '=HYPERLINK("http://evil","campaign")'
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")  # OWASP's list, written out here
NEGATIVE_ATTEMPTS = -5  # a number that begins with "-": data, not a formula


@pytest.fixture
def hostile(seeded, store):
    """The seed plus one lead per hostile text, in a campaign with a hostile name."""
    template = next(r for r in seeded.rows if r["dial_bucket"] == "answered")
    rows = [
        {
            **template,
            "campaign_name": HOSTILE_CAMPAIGN,
            "lead_key": f"H{i}",
            "lead_id": f"H{i}",
            "name": text,
            "disposition": text,
            "comments": text,
            "attempts": NEGATIVE_ATTEMPTS if i == 0 else i,
        }
        for i, text in enumerate(HOSTILE)
    ]
    insert_rows(store, rows)
    return seeded.rows + rows


def read_csv(data: bytes) -> tuple[list[str], list[list[str]]]:
    assert data.startswith(b"\xef\xbb\xbf")  # the BOM: Excel reads the file as UTF-8
    rows = list(csv.reader(io.StringIO(data.decode("utf-8-sig"), newline="")))
    return rows[0], rows[1:]


def assert_no_formula_cell(header, rows, numeric=()):
    for row in rows:
        for name, cell in zip(header, row, strict=True):
            if name not in numeric:
                assert not cell.startswith(FORMULA_STARTS), (name, cell)


def test_leads_csv_neutralises_every_formula_like_text_cell(hostile, cursor, seeded):
    data = metrics.export_csv(cursor, Filters(), TZ, seeded.today)
    header, rows = read_csv(data)
    assert len(rows) == len(hostile)
    column = {name: i for i, name in enumerate(header)}
    assert_no_formula_cell(header, rows, numeric=("Attempts",))
    mine = [r for r in rows if r[column["Campaign"]] == "'" + HOSTILE_CAMPAIGN]
    assert sorted(r[column["Name"]] for r in mine) == sorted("'" + t for t in HOSTILE)
    for row in mine:
        assert row[column["Disposition"]] == row[column["Name"]] == row[column["Comments"]]
    # Text cells are quoted (embedded quotes doubled); numbers stay numbers, "-5" included.
    assert b'"\'=HYPERLINK(""http://x"",""y"")"' in data
    assert str(NEGATIVE_ATTEMPTS) in [r[column["Attempts"]] for r in mine]
    assert f",{NEGATIVE_ATTEMPTS}," in data.decode("utf-8-sig")
    # Ordinary and unicode values are unchanged.
    seeded_by_name = {r["name"]: r for r in seeded.rows}
    for row in rows:
        lead = seeded_by_name.get(row[column["Name"]])
        if lead is not None:
            assert row[column["Campaign"]] == lead["campaign_name"]
            expected = "" if lead["attempts"] is None else str(lead["attempts"])
            assert row[column["Attempts"]] == expected
    campaigns = {r[column["Campaign"]] for r in rows}
    assert set(CAMPAIGNS) <= campaigns  # Arabic, emoji, quotes, <script> as typed
    assert any(r[column["Name"]].startswith('Zoë "Q" O\'Neil') for r in rows)


def test_leads_csv_keeps_the_default_order_and_the_search(hostile, cursor, seeded):
    data = metrics.export_csv(cursor, Filters(), TZ, seeded.today, search="Customer 1")
    header, rows = read_csv(data)
    page = metrics.lead_page(cursor, Filters(), TZ, seeded.today, search="Customer 1", limit=1000)
    assert [r[header.index("Name")] for r in rows] == list(page["Name"])


def test_shown_phones_that_begin_with_plus_are_neutralised(hostile, cursor, seeded):
    data = metrics.export_csv(cursor, Filters(), TZ, seeded.today, show_phones=True)
    header, rows = read_csv(data)
    phones = [r[header.index("Phone")] for r in rows]
    assert all(p.startswith("'+91 98") for p in phones)


def frames_the_pages_export(cursor, today) -> dict[str, pd.DataFrame]:
    """Every chart-numbers and comparison frame, shaped as the pages hand it to ui.numbers."""
    everything = Filters()
    return {
        "dial buckets": ui.with_percent(
            metrics.dial_buckets_by_campaign(cursor, everything, TZ, today).drop(
                columns=["is_other"]
            )
        ),
        "dispositions": ui.with_percent(
            metrics.dispositions_by_campaign(cursor, everything, TZ, today, top=40).drop(
                columns=["is_other"]
            )
        ),
        "pareto": ui.with_percent(
            metrics.disposition_pareto(cursor, everything, TZ, today, top=40).drop(
                columns=["is_other"]
            )
        ),
        "sunburst": metrics.sunburst_paths(cursor, everything, TZ, today),
        "comparison": metrics.comparison_table(
            metrics.campaign_kpis(cursor, everything, TZ, today)
        ),
    }


def test_chart_numbers_and_the_comparison_are_neutralised(hostile, cursor, seeded):
    for name, frame in frames_the_pages_export(cursor, seeded.today).items():
        header, rows = read_csv(export.frame_csv(frame))
        assert header == list(frame.columns), name
        assert len(rows) == len(frame), name
        numeric = [c for c in frame.columns if pd.api.types.is_numeric_dtype(frame[c])]
        assert_no_formula_cell(header, rows, numeric=numeric)
        cells = {cell for row in rows for cell in row}
        if name in ("dial buckets", "comparison"):
            assert "'" + HOSTILE_CAMPAIGN in cells, name
        else:
            assert {"'" + t for t in HOSTILE} <= cells, name
        for column in numeric:  # numbers written as numbers, equal to the frame's
            values = [row[header.index(column)] for row in rows]
            read = pd.to_numeric(pd.Series(values).replace("", None), errors="raise")
            assert read.tolist() == pytest.approx(frame[column].tolist(), nan_ok=True), column


def test_every_csv_goes_through_the_one_writer():
    """No second CSV writer: no `to_csv` in the product, and the pages' downloads name it."""
    sources = [PROJECT_ROOT / "dashboard.py", *(PROJECT_ROOT / "lib").rglob("*.py")]
    sources += list((PROJECT_ROOT / "app_pages").glob("*.py"))
    writers = [str(p) for p in sources if re.search(r"\.to_csv\(|csv\.writer\(", p.read_text())]
    assert writers == []
    ui_source = Path(ui.__file__).read_text()
    assert "data=lambda: export.frame_csv(frame)" in ui_source


def test_excel_stops_at_its_row_limit_and_says_so(hostile, cursor, seeded):
    limit = 5
    xlsx = metrics.export_xlsx(cursor, Filters(), TZ, seeded.today, max_rows=limit)
    with zipfile.ZipFile(io.BytesIO(xlsx)) as book:
        sheet = book.read("xl/worksheets/sheet1.xml").decode()
        note = book.read("xl/worksheets/sheet2.xml").decode()
    assert sheet.count("<row ") == limit + 1
    left_out = len(hostile) - limit
    assert f"leaves out {left_out:,} of {len(hostile):,} leads" in note
    assert metrics.excel_notice(metrics.EXCEL_MAX_ROWS) is None
    assert "leaves out 7 of" in metrics.excel_notice(metrics.EXCEL_MAX_ROWS + 7)


def test_excel_cells_are_text_never_formulas(hostile, cursor, seeded):
    filters = Filters(campaigns=(HOSTILE_CAMPAIGN,))
    xlsx = metrics.export_xlsx(cursor, filters, TZ, seeded.today)
    with zipfile.ZipFile(io.BytesIO(xlsx)) as book:
        sheet = book.read("xl/worksheets/sheet1.xml").decode()
    assert "<f>" not in sheet  # no formula cell
    assert '<t>=HYPERLINK("http://x","y")</t>' in sheet  # a text cell, as typed


def test_the_leads_page_says_when_excel_leaves_rows_out(hostile, monkeypatch):
    real = metrics.excel_notice
    monkeypatch.setattr(metrics, "excel_notice", lambda total: real(total, max_rows=10))
    at = AppTest.from_file("../dashboard.py", default_timeout=30)
    at.run()
    at.switch_page("app_pages/leads.py").run()
    assert not at.exception, at.exception
    warnings = " ".join(w.value for w in at.warning).replace("\\", "")
    assert f"leaves out {len(hostile) - 10:,} of {len(hostile):,} leads" in warnings
