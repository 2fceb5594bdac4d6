"""Reading the delivered records file with DuckDB, and refusing records it cannot take.

Every reader here reads the records (a top-level JSON array, possibly in pieces read in
parallel, NDJSON or CSV) with every field as VARCHAR: what a value means is the mapping's
business (`mapping.py`). The limits on fields and record sizes live here, because a hostile
file must be refused while it is being read, not after.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Iterable

from lib.store.receive import DeliveryRejected, RecordsFile

SAMPLE_RECORDS = 20_480  # the first records: their keys decide what is read
_MAX_FIELDS = 2_000
_MAX_OBJECT_BYTES = 1024 * 1024  # a lead is ~1 KB; a bigger record is hostile, not data


def sql_literal(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def _paths(source: RecordsFile) -> str:
    files = source.files
    if len(files) == 1:
        return sql_literal(str(files[0]))
    return "[" + ", ".join(sql_literal(str(f)) for f in files) + "]"


def records_reader(source: RecordsFile, keys: list[str]) -> str:
    """A relation giving the records' `keys` as VARCHAR columns (for CSV: every column)."""
    path = _paths(source)
    if source.format == "csv":
        return f"read_csv({path}, all_varchar = true, header = true)"
    columns = ", ".join(f"{sql_literal(k)}: 'VARCHAR'" for k in keys)
    json_format = "array" if source.format == "json" else "newline_delimited"
    return (
        f"read_json({path}, format = '{json_format}', records = true, columns = {{{columns}}}, "
        f"maximum_object_size = {_MAX_OBJECT_BYTES})"
    )


def records_objects(source: RecordsFile) -> str:
    """A relation giving each JSON record as one `json` value (to collect its keys)."""
    json_format = "array" if source.format == "json" else "newline_delimited"
    return (
        f"read_json_objects({_paths(source)}, format = '{json_format}', "
        f"maximum_object_size = {_MAX_OBJECT_BYTES})"
    )


def usable_keys(keys: Iterable[str]) -> list[str]:
    """Keys DuckDB can read as columns: not empty, one per case-insensitive spelling."""
    chosen: dict[str, str] = {}
    for key in sorted(k for k in keys if k):
        chosen.setdefault(key.lower(), key)
    if len(chosen) > _MAX_FIELDS:
        raise DeliveryRejected(400, f"the records have more than {_MAX_FIELDS} distinct fields")
    return sorted(chosen.values())


class KeyScan(threading.Thread):
    """Collects the keys of every record (the whole file) on its own cursor. `common`: the keys,
    in order, of a record of the file (the first): records with exactly those add none, so only
    the others' keys are unnested (most records of a delivery share one key list)."""

    def __init__(self, store, source: RecordsFile, common: Iterable[str] = ()) -> None:
        super().__init__(name="ingest-key-scan", daemon=True)
        self.cursor = store.cursor()
        self.source = source
        self.common = [k for k in common if "\x00" not in k]
        self.keys: set[str] | None = None
        self.error: BaseException | None = None

    def run(self) -> None:
        listed = ", ".join(sql_literal(k) for k in self.common)
        others = f"WHERE keys IS DISTINCT FROM [{listed}]" if self.common else ""
        try:
            rows = self.cursor.execute(
                f"SELECT DISTINCT unnest(keys) FROM (SELECT json_keys(json) AS keys "
                f"FROM {records_objects(self.source)}) {others}"
            ).fetchall()
            self.keys = {r[0] for r in rows} | set(self.common)
        except BaseException as exc:  # re-raised by the caller
            self.error = exc
        finally:
            self.cursor.close()

    def result(self) -> set[str]:
        self.join()
        if self.error is not None:
            raise self.error
        return self.keys or set()


def refuse_keyless(cursor, records: RecordsFile) -> None:
    """Records without any field: an empty delivery is fine, anything else is refused."""
    count, objects = cursor.execute(
        f"SELECT count(*), count(*) FILTER (WHERE json_type(json) = 'OBJECT') "
        f"FROM {records_objects(records)}"
    ).fetchone()
    if objects < count:
        raise DeliveryRejected(400, "every record must be a JSON object")
    if count:
        raise DeliveryRejected(400, "the records have neither a lead id nor a phone number")


def describe_data_error(exc: BaseException) -> str:
    """A short message for a DuckDB error about the data: no paths, no record contents."""
    text = str(exc)
    if isinstance(exc, UnicodeDecodeError) or "UTF-8" in text or "unicode" in text.lower():
        return "the records are not valid UTF-8"
    if "Malformed JSON" in text:
        found = re.search(r"at byte (\d+)", text)
        where = f" (near byte {found.group(1)} of the records)" if found else ""
        return f"the records are not valid JSON{where}"
    if "Expected OBJECT" in text or "expected records" in text:
        return "every record must be a JSON object"
    if "duplicate key" in text:
        return "a record has the same field twice"
    if "maximum_object_size" in text or "maximum object size" in text:
        return "a record is larger than 1 MiB"
    if "CSV" in text:
        first = text.splitlines()[0]
        first = re.sub(r"(file|File)\s+\"?[^\s\"]+\"?", "file", first)
        return "the CSV file could not be read: " + first[:160]
    return "the records could not be read"
