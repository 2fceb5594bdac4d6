"""Saved views (table `saved_views`, schema v8): a name for a view of the dashboard and the link
that reopens it, stored so every viewer sees the same list.

What is stored is the view's link inside the app: the page's path and the URL query, e.g.
`/campaign?campaign=Renewals_Q4&range=last_30d&basis=updated`. Never a host, a scheme or a
secret: the view layer builds it from the filters (`lib/view/saved_views.py`) and checks it again
before showing it. Here it is only checked to be an app-relative path (`check_link`), so a row
written by any other code cannot point off the app either.

Names are 1-60 characters once their outer spaces are trimmed, without control characters, and
unique ignoring case (`name_key`: NFKC-normalised and case-folded, so "Q4 Answered" and
"q4 answered" cannot both be listed). A bad or taken name raises `SavedViewError` and writes
nothing. Every write holds the store's writer lock (`Store.writing()`). Saved views change no
lead, so they leave the data version alone (the cached pages stay valid); the sidebar reads the
list live on each run.
"""

from __future__ import annotations

import unicodedata
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING

import duckdb

if TYPE_CHECKING:
    from lib.store.connection import Store

MAX_NAME = 60
MAX_LINK = 4000

SAVED_VIEWS_DDL = """
CREATE SEQUENCE IF NOT EXISTS saved_view_ids;
CREATE TABLE IF NOT EXISTS saved_views (
    id          BIGINT PRIMARY KEY DEFAULT nextval('saved_view_ids'),
    name        VARCHAR NOT NULL,         -- as typed, outer spaces trimmed
    name_key    VARCHAR NOT NULL UNIQUE,  -- NFKC + casefold of name: unique ignoring case
    link        VARCHAR NOT NULL,         -- /<page>?<query>: app-relative, no host, no secret
    created_by  VARCHAR,
    created_at  TIMESTAMPTZ NOT NULL DEFAULT now(),
    renamed_by  VARCHAR,
    renamed_at  TIMESTAMPTZ
);
"""


class SavedViewError(ValueError):
    """A name or link that cannot be saved; the message says why, in plain words."""


@dataclass(frozen=True)
class SavedView:
    id: int
    name: str
    link: str
    created_by: str | None
    created_at: datetime


def name_key(name: str) -> str:
    """What uniqueness compares: the name NFKC-normalised and case-folded."""
    return unicodedata.normalize("NFKC", name).casefold()


def check_name(name: str | None) -> str:
    """The name as stored (outer spaces trimmed); SavedViewError with the reason otherwise."""
    cleaned = (name or "").strip()
    if not cleaned:
        raise SavedViewError("A view needs a name (1 to 60 characters).")
    if len(cleaned) > MAX_NAME:
        raise SavedViewError(
            f"A view's name is at most {MAX_NAME} characters (this one has {len(cleaned)})."
        )
    if any(unicodedata.category(ch) == "Cc" for ch in cleaned):
        raise SavedViewError("A view's name cannot contain control characters (tabs, newlines).")
    return cleaned


def check_link(link: str | None) -> str:
    """An app-relative link: one leading slash, no scheme, host, backslash, space or control
    character. The view layer builds links; this refuses anything that could leave the app."""
    text = link or ""
    if not text.startswith("/") or text.startswith("//"):
        raise SavedViewError("A saved view's link must be a path inside the dashboard.")
    if len(text) > MAX_LINK:
        raise SavedViewError(f"A saved view's link is at most {MAX_LINK} characters.")
    if "\\" in text or any(ch.isspace() or unicodedata.category(ch) == "Cc" for ch in text):
        raise SavedViewError("A saved view's link cannot contain spaces or backslashes.")
    return text


def _taken(
    cursor: duckdb.DuckDBPyConnection, key: str, other_than: int | None = None
) -> str | None:
    row = cursor.execute(
        "SELECT name FROM saved_views WHERE name_key = ? AND id IS DISTINCT FROM ?",
        [key, other_than],
    ).fetchone()
    return row[0] if row else None


def _taken_error(existing: str) -> SavedViewError:
    return SavedViewError(
        f"A view named {existing!r} exists already (names are compared ignoring case). "
        "Choose another name."
    )


def list_views(store: Store) -> list[SavedView]:
    """Every saved view, by name (ignoring case)."""
    with store.cursor() as cursor:
        rows = cursor.execute(
            "SELECT id, name, link, created_by, created_at FROM saved_views ORDER BY name_key, id"
        ).fetchall()
    return [SavedView(*row) for row in rows]


def create_view(store: Store, name: str | None, link: str | None, by: str | None) -> SavedView:
    """Stores a new view; SavedViewError (nothing written) for a bad or taken name or link."""
    cleaned, target = check_name(name), check_link(link)
    key = name_key(cleaned)
    with store.writing() as cursor:
        existing = _taken(cursor, key)
        if existing is not None:
            raise _taken_error(existing)
        try:
            row = cursor.execute(
                "INSERT INTO saved_views (name, name_key, link, created_by) VALUES (?, ?, ?, ?) "
                "RETURNING id, name, link, created_by, created_at",
                [cleaned, key, target, by],
            ).fetchone()
        except duckdb.ConstraintException:
            raise _taken_error(cleaned) from None
    return SavedView(*row)


def rename_view(store: Store, view_id: int, name: str | None, by: str | None) -> str:
    """Renames a view; returns the stored name. SavedViewError for a bad or taken name or a
    view that no longer exists (nothing written)."""
    cleaned = check_name(name)
    key = name_key(cleaned)
    with store.writing() as cursor:
        if cursor.execute("SELECT 1 FROM saved_views WHERE id = ?", [view_id]).fetchone() is None:
            raise SavedViewError("That view no longer exists (another operator deleted it).")
        existing = _taken(cursor, key, other_than=view_id)
        if existing is not None:
            raise _taken_error(existing)
        try:
            cursor.execute(
                "UPDATE saved_views SET name = ?, name_key = ?, renamed_by = ?, renamed_at = now() "
                "WHERE id = ?",
                [cleaned, key, by, view_id],
            )
        except duckdb.ConstraintException:
            raise _taken_error(cleaned) from None
    return cleaned


def delete_view(store: Store, view_id: int) -> bool:
    """Deletes a view; False when it was gone already."""
    with store.writing() as cursor:
        row = cursor.execute(
            "DELETE FROM saved_views WHERE id = ? RETURNING id", [view_id]
        ).fetchone()
    return row is not None
