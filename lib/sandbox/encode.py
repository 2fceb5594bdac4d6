"""Vectorised serialisation of record tables: JSON arrays and CSV, without a per-record loop.

`records_json` builds each record's JSON text with pyarrow string kernels (escape, join) and
then takes the joined bytes straight out of the Arrow buffer: a million records serialise in
about a second instead of the ten or more that `to_pylist()` + `json.dumps` take.
"""

from __future__ import annotations

import io
import json

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv


def _lit(text: str) -> pa.Scalar:
    return pa.scalar(text, pa.large_string())


def _value_bytes(column: pa.Array) -> np.ndarray:
    """The UTF-8 bytes of every value of a large_string column, as one uint8 array."""
    return np.frombuffer(_buffer_bytes(column), dtype=np.uint8)


def _string_fragment(column: pa.Array) -> pa.Array:
    """JSON string literals for a large_string column (null -> null)."""
    data = _value_bytes(column)
    if (data < 0x20).any():
        # Rare: control characters need \\uXXXX escapes; json.dumps does them right.
        values = column.to_pylist()
        return pa.array(
            [json.dumps(v, ensure_ascii=False) if v is not None else "null" for v in values],
            pa.large_string(),
        )
    escaped = column
    if (data == ord("\\")).any():
        escaped = pc.replace_substring(escaped, "\\", "\\\\")
    if (data == ord('"')).any():
        escaped = pc.replace_substring(escaped, '"', '\\"')
    quoted = pc.binary_join_element_wise(_lit('"'), escaped, _lit('"'), _lit(""))
    if column.null_count:
        quoted = pc.if_else(pc.is_null(column), _lit("null"), quoted)
    return quoted


def _fragment(column: pa.Array) -> pa.Array:
    """The JSON literal of each value of one column."""
    kind = column.type
    if pa.types.is_dictionary(kind):
        column = column.cast(kind.value_type)
        kind = column.type
    if pa.types.is_string(kind) or pa.types.is_large_string(kind):
        return _string_fragment(column.cast(pa.large_string()))
    if pa.types.is_integer(kind) or pa.types.is_floating(kind):
        text = pc.cast(column, pa.large_string())
        return pc.if_else(pc.is_null(column), _lit("null"), text) if column.null_count else text
    if pa.types.is_boolean(kind):
        return pc.if_else(column, _lit("true"), _lit("false"))
    return _string_fragment(pc.cast(column, pa.large_string()))


def _buffer_bytes(rows: pa.Array) -> memoryview:
    """The concatenated UTF-8 bytes of a large_string array, without copying per value."""
    _, offsets_buffer, data = rows.buffers()
    offsets = np.frombuffer(offsets_buffer, dtype=np.int64)[
        rows.offset : rows.offset + len(rows) + 1
    ]
    return memoryview(data)[int(offsets[0]) : int(offsets[-1])]


def _bare_string(column: pa.Array) -> pa.Array | None:
    """The escaped text of a string column whose quotes can live in the join's literals, or
    None when the column needs its own fragments (nulls, control characters, other types)."""
    kind = column.type
    if pa.types.is_dictionary(kind):
        column = column.cast(kind.value_type)
        kind = column.type
    if not (pa.types.is_string(kind) or pa.types.is_large_string(kind)) or column.null_count:
        return None
    column = column.cast(pa.large_string())
    data = _value_bytes(column)
    if (data < 0x20).any():
        return None
    if (data == ord("\\")).any():
        column = pc.replace_substring(column, "\\", "\\\\")
    if (data == ord('"')).any():
        column = pc.replace_substring(column, '"', '\\"')
    return column


def records_json(table: pa.Table) -> bytes:
    """`[{...}, {...}]`: one JSON object per row, keys in column order, UTF-8."""
    if table.num_rows == 0:
        return b"[]"
    pieces: list[pa.Array | pa.Scalar] = []
    pending = ""  # literal text waiting to be joined before the next column
    for index, name in enumerate(table.column_names):
        column = table.column(name).combine_chunks()
        pending += ("{" if index == 0 else ",") + json.dumps(name, ensure_ascii=False) + ":"
        bare = _bare_string(column)
        if bare is not None:
            pieces += [_lit(pending + '"'), bare]
            pending = '"'
        else:
            pieces += [_lit(pending), _fragment(column)]
            pending = ""
    pieces.append(_lit(pending + "},"))
    rows = pc.binary_join_element_wise(*pieces, _lit(""))
    body = _buffer_bytes(rows)
    return b"".join((b"[", body[:-1], b"]"))  # drop the last row's trailing comma


def envelope_json(header: dict, key: str, records: bytes) -> bytes:
    """`{...header..., "<key>": <records JSON>}` without parsing the records again."""
    head = json.dumps(header, ensure_ascii=False)
    prefix = head[:-1] + (", " if header else "") + json.dumps(key) + ": "
    return b"".join((prefix.encode("utf-8"), records, b"}"))


def records_csv(table: pa.Table) -> bytes:
    """CSV with a header row of the wire field names."""
    sink = io.BytesIO()
    pacsv.write_csv(table, sink, pacsv.WriteOptions(include_header=True))
    return sink.getvalue()
