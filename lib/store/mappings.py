"""How delivered fields and values are read, as operators set it: the field mapping (delivered
field -> `leads` column, beside `[fields]` of secrets.toml, which wins and is changed there) and
the value mapping (a delivered dial status or status value -> the bucket it counts in).

Ingest reads both once per delivery (`load_mapping`); a change applies to new deliveries, and
re-ingest (lib/store/reingest.py) applies it to the kept ones.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from lib.fields import (
    DIAL_BUCKETS,
    EXTRA_TARGET,
    LEAD_STATUSES,
    FieldMappingError,
    check_field_mapping,
    column_for,
    name_key,
)

VALUE_KINDS = {"dial_status": DIAL_BUCKETS, "status": LEAD_STATUSES}
SECRETS = "secrets.toml"
SETTINGS = "settings"
DETECTED = "detected"
MAX_NAME_CHARS = 200


@dataclass(frozen=True)
class IngestMapping:
    """What one delivery is read with: explicit field targets (by delivered name, exact or
    folded by `name_key`) with where each was set, and the value overrides per kind (keyed by
    the value exactly as delivered)."""

    fields: dict[str, tuple[str, str]] = field(default_factory=dict)  # name -> (target, how)
    values: dict[str, dict[str, str]] = field(default_factory=dict)  # kind -> value -> bucket
    date_order: str = "DMY"

    def target(self, name: str) -> tuple[str | None, str]:
        """(column or None for extra, how it was decided) for a delivered field name."""
        explicit = self.fields.get(name) or self._folded().get(name_key(name))
        if explicit is not None:
            target, how = explicit
            return (None if target == EXTRA_TARGET else target), how
        detected = column_for(name)
        if detected is not None and detected in self._claimed():
            return None, "extra"  # its column is taken by an explicit mapping
        return detected, DETECTED if detected else "extra"

    def _folded(self) -> dict[str, tuple[str, str]]:
        return {name_key(k): v for k, v in self.fields.items()}

    def _claimed(self) -> set[str]:
        return {target for target, _ in self.fields.values() if target != EXTRA_TARGET}


def _ui_fields(cursor) -> dict[str, str]:
    rows = cursor.execute("SELECT field, target FROM field_mappings ORDER BY field").fetchall()
    return dict(rows)


def load_mapping(store, cursor) -> IngestMapping:
    """The mapping in force: secrets.toml's fields, then the operators' for other fields."""
    fields = {name: (target, SECRETS) for name, target in store.configured_fields.items()}
    configured = {name_key(n) for n in store.configured_fields}
    for name, target in _ui_fields(cursor).items():
        if name_key(name) not in configured:
            fields[name] = (target, SETTINGS)
    values: dict[str, dict[str, str]] = {kind: {} for kind in VALUE_KINDS}
    for kind, value, bucket in cursor.execute(
        "SELECT kind, value, bucket FROM value_mappings"
    ).fetchall():
        if kind in values:
            values[kind][value] = bucket
    return IngestMapping(fields, values, store.date_order)


def field_mapping_rows(store) -> list[dict]:
    """Every explicit field mapping: secrets.toml's first, then the operators'."""
    with store.cursor() as cursor:
        ui = cursor.execute(
            "SELECT field, target, set_by, set_at FROM field_mappings ORDER BY field"
        ).fetchall()
    configured = {name_key(n) for n in store.configured_fields}
    rows = [
        {"field": n, "target": t, "source": SECRETS, "set_by": None, "set_at": None}
        for n, t in store.configured_fields.items()
    ]
    rows += [
        {"field": n, "target": t, "source": SETTINGS, "set_by": by, "set_at": at}
        for n, t, by, at in ui
        if name_key(n) not in configured
    ]
    return rows


def save_field_mapping(store, mapping: dict[str, str | None], by: str) -> None:
    """Replaces the operators' field mapping (a None or empty target drops the row), all or
    nothing; FieldMappingError naming the fields or column at fault."""
    chosen = {}
    for name, target in mapping.items():
        name = str(name).strip()
        if len(name) > MAX_NAME_CHARS:
            raise FieldMappingError(f"a delivered field name is over {MAX_NAME_CHARS} characters")
        if target is None or not str(target).strip():
            continue
        if name_key(name) in {name_key(n) for n in store.configured_fields}:
            if store.configured_fields.get(name) == str(target).strip():
                continue  # shown as it is set in secrets.toml: nothing to store
            raise FieldMappingError(
                f"{name!r} is mapped in secrets.toml ([fields]); change it there"
            )
        chosen[name] = str(target).strip()
    check_field_mapping({**store.configured_fields, **chosen}, "the field mapping")
    with store.writing() as cursor:
        cursor.execute("BEGIN")
        try:
            cursor.execute("DELETE FROM field_mappings")
            for name, target in chosen.items():
                cursor.execute(
                    "INSERT INTO field_mappings (field, target, set_by) VALUES (?, ?, ?)",
                    [name, target, by],
                )
            cursor.execute("COMMIT")
        except BaseException:
            cursor.execute("ROLLBACK")
            raise


def value_mapping_rows(store) -> list[dict]:
    with store.cursor() as cursor:
        rows = cursor.execute(
            "SELECT kind, value, bucket, set_by, set_at FROM value_mappings ORDER BY kind, value"
        ).fetchall()
    names = ("kind", "value", "bucket", "set_by", "set_at")
    return [dict(zip(names, row, strict=True)) for row in rows]


def save_value_mapping(store, kind: str, mapping: dict[str, str | None], by: str) -> None:
    """Sets (or, with None, drops) the bucket of delivered values of one kind; ValueError
    naming a bucket that kind does not have, nothing stored."""
    if kind not in VALUE_KINDS:
        raise ValueError(f"unknown value kind {kind!r} (dial_status or status)")
    allowed = VALUE_KINDS[kind]
    for value, bucket in mapping.items():
        if bucket is not None and bucket not in allowed:
            raise ValueError(
                f"{value!r} cannot count as {bucket!r}: a {kind} is one of {', '.join(allowed)}"
            )
    with store.writing() as cursor:
        cursor.execute("BEGIN")
        try:
            for value, bucket in mapping.items():
                cursor.execute("DELETE FROM value_mappings WHERE kind = ? AND value = ?",
                               [kind, value])  # fmt: skip
                if bucket is not None:
                    cursor.execute(
                        "INSERT INTO value_mappings (kind, value, bucket, set_by) "
                        "VALUES (?, ?, ?, ?)",
                        [kind, value, bucket, by],
                    )
            cursor.execute("COMMIT")
        except BaseException:
            cursor.execute("ROLLBACK")
            raise


def suggested_field_mapping(keys) -> dict[str, str | None]:
    """What name detection alone maps each delivered field to (None: kept as extra)."""
    return {key: column_for(key) for key in keys}
