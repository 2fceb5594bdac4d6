"""Sidebar filters that show people's labels while the URL keeps the raw values.

A widget bound with `bind="query-params"` and a `format_func` writes the label into the URL and
drops a link's raw value (stack-notes), so the labelled filters are not bound: the session's
first run seeds them from the link as the filters parse it, and every run writes what they hold
back to the URL, leaving a default out as bound widgets do.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import streamlit as st

from lib.view.filters import (
    DEFAULT_BASIS,
    DEFAULT_RANGE,
    P_BASIS,
    P_DIALSTATUS,
    P_PROGRESS,
    P_RANGE,
    P_STATUS,
)

# Each labelled filter's parameter and its default (None: repeatable, empty by default).
LABELLED: dict[str, str | None] = {
    P_RANGE: DEFAULT_RANGE,
    P_BASIS: DEFAULT_BASIS,
    P_STATUS: None,
    P_DIALSTATUS: None,
    P_PROGRESS: None,
}


def seed(values: Mapping[str, Any]) -> None:
    """On the session's first run: the labelled widgets start with the link's valid values
    (`values`: `widget_values` of the link's parsed filters)."""
    for name in LABELLED:
        st.session_state[name] = values[name]


def write_back() -> None:
    """The labelled widgets' values into the URL (raw values; a default or empty one left out)."""
    for name, default in LABELLED.items():
        value = st.session_state.get(name)
        if default is None:
            wanted = [str(v) for v in value or []]
        else:
            wanted = [] if value in (None, default) else [str(value)]
        if st.query_params.get_all(name) == wanted:
            continue
        if wanted:
            st.query_params[name] = wanted
        else:
            del st.query_params[name]
