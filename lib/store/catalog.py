"""The campaigns to sync (table `campaigns`) and the disposition category map.

Campaigns come from the configuration (`source='config'`, seeded at startup by
`ensure_config_campaigns`) or are added on the Settings page (`source='ui'`). Removing a config
campaign disables it rather than deleting it, so the next start does not bring it back; removing a
UI campaign deletes its row. The leads already stored for a removed campaign stay in the database.

Each disposition maps to one category (`CATEGORIES`). A mapping saved on the Settings page is
stored in `disposition_categories`; any disposition without one gets a guess from its name
(`guess_category`, the same rules in SQL as `guess_category_sql`), so conversions are counted even
before anyone opens the Settings page.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING

import pandas as pd

if TYPE_CHECKING:
    from lib.store.connection import Store

CATEGORIES: tuple[str, ...] = ("Sale", "Contact", "Callback", "Do not call", "Unworkable", "Other")
SALE = "Sale"

MAX_CAMPAIGN_NAME = 200

# Ordered (first match wins) guesses from a disposition's name, matched on the lower-cased name
# with every run of non-alphanumeric characters turned into one space and padded with spaces.
# Decisions: "Interested" is a Contact (interest is not a sale: Conversions must count closed
# sales only; a manager can remap it); negated outcomes ("Not Interested", "No Sale") are
# Contacts; "Wrap up time exceeded :N" (no disposition chosen) is Other. Patterns are constants,
# never user input, and use only syntax that Python's `re` and DuckDB's RE2 read the same way.
CATEGORY_RULES: tuple[tuple[str, str], ...] = (
    ("Other", r"\bwrap ?up\b"),
    (
        "Do not call",
        r"\b(?:dnc|dnd|do not (?:call|disturb|contact)|don ?t call|opt(?:ed)? ?out|unsubscribe"
        r"|remove (?:me|from)|stop calling)\b",
    ),
    (
        "Unworkable",
        r"\b(?:(?:wrong|invalid|incorrect|bad) (?:number|no|num|contact|person)|invalid"
        r"|wrong party|does not exist|not exist|out of service|not in service|duplicate"
        r"|deceased|fax|no such number|language (?:barrier|issue|problem))\b",
    ),
    (
        "Contact",
        r"\b(?:(?:not|no|non) (?:interested|converted|sold|sale|closed|purchase|eligible)"
        r"|won ?t|will not|don ?t want|refused|declined|rejected|denied|cancel(?:led|ed)?)\b",
    ),
    (
        "Callback",
        r"\b(?:call ?back|cb|call (?:me )?later|follow ?ups?|reschedul(?:e|ed|ing)|call again"
        r"|recall|appointment|busy call later)\b",
    ),
    (
        "Sale",
        r"\b(?:sales?|sold|converted|conversion|closed(?: won)?|deal won|purchased?|booked"
        r"|order (?:placed|booked|confirmed)|paid|payment (?:done|received|made)|enrolled"
        r"|renewed|subscribed|successful sale)\b",
    ),
    (
        "Contact",
        r"\b(?:interested|contacted|spoke|answered|connected|information|info|enquiry|inquiry"
        r"|query|complaint|feedback|survey(?: completed| done)?|already|thinking|considering"
        r"|ptp|promise to pay|promised|escalat(?:ed|ion))\b",
    ),
)


def _normalise(name: str) -> str:
    return " " + re.sub(r"[^a-z0-9]+", " ", name.lower()).strip() + " "


_COMPILED = tuple((category, re.compile(pattern)) for category, pattern in CATEGORY_RULES)


def guess_category(disposition: str | None) -> str:
    """The default category guessed from a disposition's name (see CATEGORY_RULES)."""
    if not disposition or not disposition.strip():
        return "Other"
    key = _normalise(disposition)
    for category, pattern in _COMPILED:
        if pattern.search(key):
            return category
    return "Other"


def guess_category_sql(column: str) -> str:
    """SQL CASE with the same guesses as `guess_category` over a disposition column.

    `column` is a column name from our own code, never user input; patterns are the constants
    above (no quote characters), so the literal text is safe.
    """
    folded = f"regexp_replace(lower(coalesce({column}, '')), '[^a-z0-9]+', ' ', 'g')"
    key = f"(' ' || trim({folded}) || ' ')"
    whens = " ".join(
        f"WHEN regexp_matches({key}, '{pattern}') THEN '{category}'"
        for category, pattern in CATEGORY_RULES
    )
    return f"CASE WHEN trim(coalesce({column}, '')) = '' THEN 'Other' {whens} ELSE 'Other' END"


def category_sql(column: str = "disposition", stored: str = "dc.category") -> str:
    """The effective category: the stored mapping, else the guess (needs a LEFT JOIN as `dc`)."""
    return f"coalesce({stored}, {guess_category_sql(column)})"


# -- campaigns ----------------------------------------------------------------------------------


def validate_campaign_name(name: str) -> str:
    """The name as stored (outer spaces removed); ValueError with a reason when unusable."""
    cleaned = (name or "").strip()
    if not cleaned:
        raise ValueError("A campaign name cannot be empty.")
    if len(cleaned) > MAX_CAMPAIGN_NAME:
        raise ValueError(f"A campaign name is at most {MAX_CAMPAIGN_NAME} characters.")
    if any(unicodedata.category(ch) == "Cc" for ch in cleaned):
        raise ValueError("A campaign name cannot contain control characters (tabs, newlines).")
    return cleaned


def list_campaigns(store: Store, enabled_only: bool = True) -> list[str]:
    """Campaign names in the catalog, in the order they were added (the sync engine's list)."""
    sql = "SELECT name FROM campaigns"
    if enabled_only:
        sql += " WHERE enabled"
    with store.cursor() as cursor:
        return [row[0] for row in cursor.execute(sql + " ORDER BY added_at, name").fetchall()]


def ensure_config_campaigns(store: Store, names: Iterable[str]) -> int:
    """Adds configured campaigns not yet in the catalog (never re-enables one); returns how many."""
    added = 0
    with store.writing() as cursor:
        for raw in names:
            try:
                name = validate_campaign_name(raw)
            except ValueError:
                continue
            exists = cursor.execute("SELECT 1 FROM campaigns WHERE name = ?", [name]).fetchone()
            if exists is None:
                cursor.execute("INSERT INTO campaigns (name, source) VALUES (?, 'config')", [name])
                added += 1
    return added


def add_campaign(store: Store, name: str, source: str = "ui") -> bool:
    """Adds (or re-enables) a campaign; False when already enabled; ValueError if unusable."""
    name = validate_campaign_name(name)
    with store.writing() as cursor:
        row = cursor.execute("SELECT enabled FROM campaigns WHERE name = ?", [name]).fetchone()
        if row is None:
            cursor.execute("INSERT INTO campaigns (name, source) VALUES (?, ?)", [name, source])
            return True
        if not row[0]:
            cursor.execute("UPDATE campaigns SET enabled = TRUE WHERE name = ?", [name])
            return True
        return False


def remove_campaign(store: Store, name: str) -> str:
    """Stops syncing a campaign: 'disabled' (config campaign), 'deleted' (UI one) or 'missing'."""
    with store.writing() as cursor:
        row = cursor.execute("SELECT source FROM campaigns WHERE name = ?", [name]).fetchone()
        if row is None:
            return "missing"
        if row[0] == "config":
            cursor.execute("UPDATE campaigns SET enabled = FALSE WHERE name = ?", [name])
            return "disabled"
        cursor.execute("DELETE FROM campaigns WHERE name = ?", [name])
        return "deleted"


def campaign_table(store: Store) -> pd.DataFrame:
    """Catalog rows with each campaign's stored lead count and sync state, for the Settings page."""
    sql = """
        SELECT c.name AS campaign, c.source, c.enabled, c.added_at,
               coalesce(l.leads, 0) AS leads, s.last_success_at, s.last_error
        FROM campaigns c
        LEFT JOIN (SELECT campaign_name, count(*) AS leads FROM leads GROUP BY ALL) l
               ON l.campaign_name = c.name
        LEFT JOIN sync_state s ON s.campaign_name = c.name
        ORDER BY c.added_at, c.name
    """
    with store.cursor() as cursor:
        return cursor.execute(sql).df()


# -- disposition categories -----------------------------------------------------------------


def stored_categories(store: Store) -> dict[str, str]:
    with store.cursor() as cursor:
        rows = cursor.execute("SELECT disposition, category FROM disposition_categories").fetchall()
    return dict(rows)


def disposition_map(store: Store) -> pd.DataFrame:
    """Every known disposition (from leads and the stored map) with its category and lead count.

    Columns: disposition, category, source ('saved' or 'guess'), leads.
    """
    sql = """
        SELECT d.disposition, coalesce(l.leads, 0) AS leads, dc.category AS saved
        FROM (
            SELECT DISTINCT disposition FROM leads
            WHERE disposition IS NOT NULL AND trim(disposition) <> ''
            UNION SELECT disposition FROM disposition_categories
        ) d
        LEFT JOIN (SELECT disposition, count(*) AS leads FROM leads GROUP BY ALL) l
               ON l.disposition = d.disposition
        LEFT JOIN disposition_categories dc ON dc.disposition = d.disposition
        ORDER BY leads DESC, d.disposition
    """
    with store.cursor() as cursor:
        frame = cursor.execute(sql).df()
    frame["category"] = [
        saved if isinstance(saved, str) else guess_category(name)
        for name, saved in zip(frame["disposition"], frame["saved"], strict=True)
    ]
    frame["source"] = ["saved" if isinstance(s, str) else "guess" for s in frame["saved"]]
    return frame[["disposition", "category", "source", "leads"]]


def save_disposition_categories(store: Store, mapping: Mapping[str, str]) -> int:
    """Stores categories (upsert); returns how many rows changed. Bumps the data version because
    conversions depend on the map and the dashboard's caches key on that version."""
    bad = sorted({c for c in mapping.values() if c not in CATEGORIES})
    if bad:
        raise ValueError(f"Unknown categories: {', '.join(bad)}; use one of {CATEGORIES}.")
    changed = 0
    with store.writing() as cursor:
        current = dict(
            cursor.execute("SELECT disposition, category FROM disposition_categories").fetchall()
        )
        cursor.execute("BEGIN")
        try:
            for disposition, category in mapping.items():
                if not isinstance(disposition, str) or disposition.strip() == "":
                    continue
                if current.get(disposition) == category:
                    continue
                cursor.execute(
                    "INSERT INTO disposition_categories VALUES (?, ?) "
                    "ON CONFLICT (disposition) DO UPDATE SET category = excluded.category",
                    [disposition, category],
                )
                changed += 1
            if changed:
                store.bump_data_version(cursor)
            cursor.execute("COMMIT")
        except Exception:
            cursor.execute("ROLLBACK")
            raise
    return changed


def forget_disposition_categories(store: Store, dispositions: Iterable[str]) -> int:
    """Drops saved categories so those dispositions fall back to the guess; returns how many."""
    names = [d for d in dispositions if isinstance(d, str)]
    if not names:
        return 0
    with store.writing() as cursor:
        before = cursor.execute("SELECT count(*) FROM disposition_categories").fetchone()[0]
        cursor.execute(
            "DELETE FROM disposition_categories WHERE list_contains(?, disposition)", [names]
        )
        after = cursor.execute("SELECT count(*) FROM disposition_categories").fetchone()[0]
        if before != after:
            store.bump_data_version(cursor)
    return before - after


def categorised(relation: str) -> str:
    """`relation` (with a `disposition` column) plus `category`, resolved once per distinct
    disposition (the guess is a chain of regular expressions: per row, and compiled in every
    query, it would dominate the pages' queries)."""
    return f"""
        SELECT l.*, coalesce(cat.category, 'Other') AS category
        FROM {relation} l
        LEFT JOIN (
            SELECT d.disposition, {category_sql("d.disposition", "dc.category")} AS category
            FROM (SELECT DISTINCT disposition FROM {relation} WHERE disposition IS NOT NULL) d
            LEFT JOIN disposition_categories dc ON dc.disposition = d.disposition
        ) cat ON cat.disposition = l.disposition
    """
