"""Reading back the small workbooks `lib.view.export.frames_xlsx` writes, from their XML (no
spreadsheet library is a dependency): what a user opening the file would see in each cell."""

from __future__ import annotations

import io
import re
import zipfile


def sheet_rows(book: bytes, sheet: int) -> list[dict[str, str]]:
    """Sheet number `sheet` (1-based) as rows of {column letter: text}, shared strings resolved."""
    with zipfile.ZipFile(io.BytesIO(book)) as archive:
        shared_xml = archive.read("xl/sharedStrings.xml").decode()
        xml = archive.read(f"xl/worksheets/sheet{sheet}.xml").decode()
    assert "<f>" not in xml, "a cell holds a formula"
    shared = re.findall(r"<t[^>]*>([^<]*)</t>", shared_xml)
    cell = r'<c r="([A-Z]+)\d+"(?: s="\d+")?(?: t="(\w+)")?><v>([^<]*)</v>'
    return [
        {col: shared[int(v)] if kind == "s" else v for col, kind, v in re.findall(cell, row)}
        for row in re.findall(r"<row [^>]*>(.*?)</row>", xml)
    ]


def sheet_names(book: bytes) -> list[str]:
    with zipfile.ZipFile(io.BytesIO(book)) as archive:
        return re.findall(r'<sheet name="([^"]*)"', archive.read("xl/workbook.xml").decode())
