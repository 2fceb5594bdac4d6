"""The attempts allowed per campaign as the pages apply them: set by an operator, or inferred
from the highest attempts seen (shown "(inferred)")."""

from __future__ import annotations

import duckdb
import pandas as pd

from lib.store.summary import summary_ready
from lib.view.metrics.relation import allowed_sql


def attempts_allowed(cursor: duckdb.DuckDBPyConnection) -> pd.DataFrame:
    """One row per campaign with leads or a setting: campaign, attempts allowed (as set, or
    NA), highest seen, allowed (what applies) and inferred."""
    source = "lead_summary" if summary_ready(cursor) else "leads"
    return cursor.execute(
        f"""
        SELECT campaign_name AS campaign, set AS "attempts allowed", seen AS "highest seen",
               allowed, inferred
        FROM ({allowed_sql(source)}) ORDER BY lower(campaign_name), campaign_name
        """
    ).df()
