"""The operators' dialing policy: attempts allowed per campaign, the calling window, the stale
threshold. Stored in the database so one edit applies to every viewer at once.

A change bumps the data version (every cached page moves on) but changes no lead, so the lead
summary is stamped current again in the same transaction instead of being rebuilt.
"""

from __future__ import annotations

from dataclasses import dataclass

from lib.store import summary
from lib.store.connection import Store

MAX_ATTEMPTS_ALLOWED = 100


class PolicyError(ValueError):
    """A policy value an operator cannot set; the message says which and why."""


@dataclass(frozen=True)
class DialPolicy:
    """The calling window is whole local hours, [start, end): the lead summary keeps the hour of
    each last call, not its minute."""

    window_start: int = 9
    window_end: int = 21
    stale_days: int = 3

    def check(self) -> DialPolicy:
        if not (0 <= self.window_start <= 23 and 1 <= self.window_end <= 24):
            raise PolicyError("The calling window's hours must lie between 00:00 and 24:00.")
        if self.window_start >= self.window_end:
            raise PolicyError(
                f"The calling window must start before it ends "
                f"({self.window_start:02d}:00 is not before {self.window_end:02d}:00)."
            )
        if not 1 <= self.stale_days <= 365:
            raise PolicyError("The stale threshold must be between 1 and 365 days.")
        return self


def dial_policy(store: Store) -> DialPolicy:
    with store.cursor() as cursor:
        row = cursor.execute(
            "SELECT window_start, window_end, stale_days FROM dial_policy WHERE id = 1"
        ).fetchone()
    return DialPolicy(*row) if row else DialPolicy()


def attempts_allowed(store: Store) -> dict[str, int]:
    """The campaigns an operator set a number of tries for (the others are inferred)."""
    with store.cursor() as cursor:
        rows = cursor.execute(
            "SELECT campaign_name, attempts_allowed FROM campaign_policy ORDER BY campaign_name"
        ).fetchall()
    return dict(rows)


def _changed(store: Store, statements: list[tuple[str, list]]) -> None:
    with store.writing() as cursor:
        cursor.execute("BEGIN")
        try:
            current = summary.summary_is_current(cursor)
            for sql, params in statements:
                cursor.execute(sql, params)
            store.bump_data_version(cursor)
            if current:
                summary.stamp_summary(cursor)
            cursor.execute("COMMIT")
        except BaseException:
            cursor.execute("ROLLBACK")
            raise


def save_dial_policy(store: Store, policy: DialPolicy, by: str | None) -> None:
    policy.check()
    _changed(
        store,
        [(
            "INSERT OR REPLACE INTO dial_policy VALUES (1, ?, ?, ?, ?, now())",
            [policy.window_start, policy.window_end, policy.stale_days, by],
        )],
    )  # fmt: skip


def save_attempts_allowed(store: Store, allowed: dict[str, int | None], by: str | None) -> None:
    """Sets (an int) or clears (None: inferred again) the tries of each named campaign."""
    statements = []
    for campaign, value in allowed.items():
        if value is None:
            statements.append(("DELETE FROM campaign_policy WHERE campaign_name = ?", [campaign]))
            continue
        if isinstance(value, bool) or not isinstance(value, int):
            raise PolicyError(f"Attempts allowed for {campaign!r} must be a whole number.")
        if not 1 <= value <= MAX_ATTEMPTS_ALLOWED:
            raise PolicyError(
                f"Attempts allowed for {campaign!r} must be between 1 and "
                f"{MAX_ATTEMPTS_ALLOWED} (got {value})."
            )
        statements.append((
            "INSERT OR REPLACE INTO campaign_policy VALUES (?, ?, ?, now())", [campaign, value, by]
        ))  # fmt: skip
    if statements:
        _changed(store, statements)
