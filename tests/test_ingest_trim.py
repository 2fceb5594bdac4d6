"""The mapping's trim shortcut (lib/store/ingest/mapping.py `_trimmed`) gives trim()'s result for
every value: spaces of every Unicode kind at either end, other whitespace trim keeps, non-ASCII
text, empty and NULL."""

from __future__ import annotations

import duckdb

from lib.store.ingest.mapping import _trimmed

SPACES = [0x20, 0xA0, 0x1680, *range(0x2000, 0x200B), 0x202F, 0x205F, 0x3000]
KEPT = [0x09, 0x0A, 0x0D, 0x85, 0xFEFF, 0x200B, 0x7F, 0x00, 0x01, 0x21, 0x7E]
SHAPES = ["{c}a", "a{c}", "{c}a{c}", "{c}", "a{c}b", "{c}{c}", "é{c}", "{c}é", "{c}2026-11-30"]


def test_the_shortcut_equals_trim():
    values = [shape.replace("{c}", chr(c)) for c in SPACES + KEPT for shape in SHAPES]
    values += ["", "a", "L123", "2026-11-30 10:00:00", "é", "aé", "!", "~"]
    con = duckdb.connect()
    con.execute('CREATE TABLE t ("v" VARCHAR)')
    con.executemany("INSERT INTO t VALUES (?)", [[v] for v in values] + [[None]])
    differ = con.execute(
        f"SELECT v FROM t WHERE trim(v) IS DISTINCT FROM {_trimmed('v')}"
    ).fetchall()
    assert differ == []
    assert con.execute("SELECT count(*) FROM t").fetchone()[0] == len(values) + 1
