"""The one place numbers become text people read: tiles, tables, chart labels and hover.

`[dialstatus] number_format` (lib/config.py) picks the grouping: `indian` (Babel's `en_IN`:
12,34,567; compact 12.3 L, 1.2 Cr) or `international` (`en_US`: 1,234,567; compact 1.2M).
Every function takes the format explicitly (`indian`, `international` or a Babel locale), so
cached figures and tables key on it; `locale_for(settings)` names the current one. Exports never
come here: CSV and Excel keep the plain numbers.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Iterable, Mapping
from typing import Any

import pandas as pd
from babel import Locale
from babel.numbers import format_compact_decimal, format_decimal, format_percent

LOCALES = {"indian": "en_IN", "international": "en_US"}
DEFAULT_FORMAT = "indian"  # Settings' own default (DEFAULT_TIMEZONE is Asia/Kolkata)
MISSING = ""  # what None and NaN read as, unless the caller names its own (tiles show "–")


def locale_for(settings: Any) -> str:
    """The Babel locale of these settings' `number_format`."""
    return locale_of(getattr(settings, "number_format", DEFAULT_FORMAT))


def locale_of(number_format: str) -> str:
    """`indian` -> en_IN, `international` -> en_US; a locale name is returned as it is."""
    return LOCALES.get(number_format, number_format)


def _missing(value: Any) -> bool:
    if value is None:
        return True
    try:
        return bool(pd.isna(value))
    except (TypeError, ValueError):
        return False


@functools.cache
def _pattern(locale: str, kind: str, digits: int) -> str:
    """The locale's own decimal or percent pattern (its grouping) with exactly `digits`."""
    parsed = Locale.parse(locale)
    formats = parsed.decimal_formats if kind == "decimal" else parsed.percent_formats
    pattern = formats[None].pattern.split(";")[0]
    fraction = "." + "0" * digits if digits > 0 else ""
    whole = re.sub(r"\.[0#]*", "", pattern)
    if kind == "percent":
        return whole.replace("%", fraction + "%", 1)
    return whole + fraction


def count(n: Any, number_format: str, missing: str = MISSING) -> str:
    """A whole number grouped: 12,34,567 (indian) or 1,234,567 (international)."""
    if _missing(n):
        return missing
    locale = locale_of(number_format)
    return format_decimal(round(float(n)), _pattern(locale, "decimal", 0), locale=locale)


def number(x: Any, number_format: str, missing: str = MISSING) -> str:
    """Any number in the locale's own pattern (grouped, up to 3 decimals): 1,23,456.75."""
    if _missing(x):
        return missing
    return format_decimal(x, locale=locale_of(number_format))


def signed_count(n: Any, number_format: str, missing: str = MISSING) -> str:
    """A change in a count, always signed: +1,23,456 / -12 / +0."""
    if _missing(n):
        return missing
    whole = round(float(n))
    return ("-" if whole < 0 else "+") + count(abs(whole), number_format)


def decimal(x: Any, number_format: str, digits: int = 1, missing: str = MISSING) -> str:
    """A number grouped with exactly `digits` decimals: 1,23,456.7 / 123,456.7."""
    if _missing(x):
        return missing
    locale = locale_of(number_format)
    return format_decimal(float(x), _pattern(locale, "decimal", digits), locale=locale)


def percent(share: Any, number_format: str, digits: int = 1, missing: str = MISSING) -> str:
    """A 0-1 share as a percentage: 0.1234 -> 12.3%."""
    if _missing(share):
        return missing
    locale = locale_of(number_format)
    return format_percent(float(share), _pattern(locale, "percent", digits), locale=locale)


def points(share: Any, number_format: str, digits: int = 1, missing: str = MISSING) -> str:
    """A value already in percent (0-100): 12.34 -> 12.3%."""
    if _missing(share):
        return missing
    return percent(float(share) / 100, number_format, digits, missing)


_SUFFIX = re.compile(r"(?<=\d)(?=[^\d.,\s-])")


def compact(n: Any, number_format: str, digits: int = 1, missing: str = MISSING) -> str:
    """A short count: 12.3 L and 1.2 Cr (indian, a space before the unit as people write it)
    or 1.2M and 3.4K (international)."""
    if _missing(n):
        return missing
    locale = locale_of(number_format)
    text = format_compact_decimal(float(n), locale=locale, fraction_digits=digits)
    return _SUFFIX.sub(" ", text, count=1) if locale == LOCALES["indian"] else text


def styled(
    frame: pd.DataFrame,
    number_format: str,
    *,
    counts: Iterable[str] = (),
    decimals: Mapping[str, int] | None = None,
    percents: Iterable[str] = (),
    suffixes: Mapping[str, str] | None = None,
    others: bool = True,
) -> Any:
    """A pandas Styler showing the frame's numbers in this format, the values kept numeric
    (st.dataframe sorts by them). `counts`: whole numbers; `decimals`: column -> digits;
    `percents`: percentages already 0-100; `suffixes`: text after a column's number (" s").
    `others`: every other numeric column too (integers as counts, the rest as `number`).
    A column format given in st.column_config would override these: leave it out there."""
    decimals = dict(decimals or {})
    suffixes = dict(suffixes or {})
    formatters: dict[str, Any] = {}

    def with_suffix(column: str, render):
        tail = suffixes.get(column, "")
        return lambda v: (render(v) + tail) if not _missing(v) else ""

    for column in counts:
        if column in frame.columns:
            formatters[column] = with_suffix(column, lambda v: count(v, number_format))
    for column, digits in decimals.items():
        if column in frame.columns:
            formatters[column] = with_suffix(
                column, lambda v, d=digits: decimal(v, number_format, d)
            )
    for column in percents:
        if column in frame.columns:
            formatters[column] = with_suffix(column, lambda v: points(v, number_format))
    if others:
        for column in frame.columns:
            if column in formatters or not _numeric(frame[column]):
                continue
            if pd.api.types.is_integer_dtype(frame[column]):
                formatters[column] = with_suffix(column, lambda v: count(v, number_format))
            else:
                formatters[column] = with_suffix(column, lambda v: number(v, number_format))
    return frame.style.format(formatters, na_rep="")


def _numeric(column: pd.Series) -> bool:
    return pd.api.types.is_numeric_dtype(column) and not pd.api.types.is_bool_dtype(column)
