"""lib/view/metrics against the seeded database: every KPI checked two independent ways (plain
Python over the seed rows, and hand-written SQL over the raw table), plus every aggregate."""

from __future__ import annotations

import io
import zipfile
from collections import Counter
from datetime import timedelta
from zoneinfo import ZoneInfo

import pandas as pd
import pytest

from lib.fields import DIAL_BUCKETS
from lib.view import metrics
from lib.view.filters import Filters
from lib.view.labels import DIAL_STATUS_LABELS, LEAD_STATUS_LABELS
from tests.conftest import CAMPAIGNS, EXPECTED_CATEGORY, TZ, kept_rows
from tests.support.expected import KPI_LABELS

ZONE = ZoneInfo(TZ)


def attempted(r) -> bool:
    if r["attempts"] is not None:
        return r["attempts"] > 0
    return r["dial_bucket"] != "Not dialled"


def expected_counts(rows) -> dict[str, int]:
    return {
        "leads": len(rows),
        "pending": sum(r["lead_status"] == "Pending" for r in rows),
        "attempted": sum(attempted(r) for r in rows),
        "answered": sum(r["dial_bucket"] == "answered" for r in rows),
        "successes": sum(r["lead_status"] == "Success" for r in rows),
        "conversions": sum(EXPECTED_CATEGORY.get(r["disposition"]) == "Sale" for r in rows),
    }


# Independent SQL over the raw table; categories from the test's own literal map.
INDEPENDENT_SQL = """
    WITH cat AS (SELECT * FROM (VALUES {values}) t(disposition, category))
    SELECT count(*),
           sum(CASE WHEN lead_status = 'Pending' THEN 1 ELSE 0 END),
           sum(CASE WHEN (attempts IS NOT NULL AND attempts > 0)
                     OR (attempts IS NULL AND dial_bucket != 'Not dialled') THEN 1 ELSE 0 END),
           sum(CASE WHEN dial_bucket = 'answered' THEN 1 ELSE 0 END),
           sum(CASE WHEN lead_status = 'Success' THEN 1 ELSE 0 END),
           sum(CASE WHEN cat.category = 'Sale' THEN 1 ELSE 0 END)
    FROM leads LEFT JOIN cat USING (disposition)
    WHERE lead_key IN (SELECT unnest(?))
"""


def independent_sql_counts(cursor, keys) -> dict[str, int]:
    values = ", ".join("(?, ?)" for _ in EXPECTED_CATEGORY)
    params = [x for pair in EXPECTED_CATEGORY.items() for x in pair] + [list(keys)]
    row = cursor.execute(INDEPENDENT_SQL.format(values=values), params).fetchone()
    names = ("leads", "pending", "attempted", "answered", "successes", "conversions")
    return {n: int(v or 0) for n, v in zip(names, row, strict=True)}


FILTER_CASES = [
    Filters(),
    Filters(campaigns=(CAMPAIGNS[0],)),
    Filters(campaigns=(CAMPAIGNS[1], CAMPAIGNS[2])),
    Filters(campaigns=(CAMPAIGNS[3],)),
    Filters(range="last_7d"),
    Filters(range="last_30d", basis="created"),
    Filters(range="today"),
    Filters(statuses=("Pending",)),
    Filters(dial_buckets=("answered",)),
    Filters(dispositions=("Interested", "Sale Closed")),
    Filters(range="this_month", dial_buckets=("Fail", "NoAnswer"), statuses=("Fail",)),
]


@pytest.mark.parametrize("filters", FILTER_CASES, ids=lambda f: repr(f)[8:70])
def test_kpi_counts_match_python_and_independent_sql(seeded, cursor, filters):
    rows = kept_rows(seeded.rows, filters, seeded.today)
    expected = expected_counts(rows)
    assert metrics.kpi_counts(cursor, filters, TZ, seeded.today) == expected
    assert independent_sql_counts(cursor, [r["lead_key"] for r in rows]) == expected


def test_the_seed_exercises_every_case(seeded):
    rows = seeded.rows
    assert {r["dial_bucket"] for r in rows} == {
        "answered",
        "NoAnswer",
        "user_disconnected",
        "Fail",
        "Not dialled",
    }
    assert any(r["attempts"] is None and r["dial_bucket"] != "Not dialled" for r in rows)
    assert any(r["attempts"] == 0 for r in rows)
    assert any(r["status"] in ("", None) for r in rows)
    assert any(r["disposition"] == "Interested" for r in rows)  # stored override applies


def test_kpi_tiles_in_order_with_rates(seeded, cursor):
    values = metrics.kpis(cursor, Filters(), TZ, seeded.today)
    assert [v.kpi.name for v in values] == KPI_LABELS
    c = expected_counts(seeded.rows)
    by_name = {v.kpi.name: v for v in values}
    assert by_name["Answer rate"].value == pytest.approx(c["answered"] / c["attempted"])
    assert by_name["Success rate"].value == pytest.approx(c["successes"] / c["attempted"])
    assert by_name["Conversion rate"].value == pytest.approx(c["conversions"] / c["answered"])
    assert (by_name["Answer rate"].numerator, by_name["Answer rate"].denominator) == (
        c["answered"],
        c["attempted"],
    )
    assert by_name["Pending"].share == pytest.approx(c["pending"] / c["leads"])
    assert all(v.kpi.help for v in values)


def test_kpi_values_handle_empty_selection():
    values = metrics.kpi_values(dict.fromkeys(metrics.COUNT_SQL, 0))
    rates = [v for v in values if v.kpi.is_rate]
    assert all(v.value is None and v.small_sample for v in rates)
    assert [v.value for v in values if not v.kpi.is_rate] == [0, 0, 0, 0, 0]


def test_small_samples_are_marked(seeded, cursor):
    values = metrics.kpis(cursor, Filters(campaigns=(CAMPAIGNS[3],)), TZ, seeded.today)
    small = {v.kpi.name for v in values if v.small_sample}
    assert small == {"Answer rate", "Success rate", "Conversion rate"}  # 12 leads
    values = metrics.kpis(cursor, Filters(campaigns=(CAMPAIGNS[0],)), TZ, seeded.today)
    c = expected_counts(kept_rows(seeded.rows, Filters(campaigns=(CAMPAIGNS[0],)), seeded.today))
    assert c["attempted"] >= 30 and c["answered"] >= 30
    assert not any(v.small_sample for v in values)


def test_campaign_kpis_and_comparison_table(seeded, cursor):
    frame = metrics.campaign_kpis(cursor, Filters(), TZ, seeded.today)
    assert set(frame["campaign"]) == set(CAMPAIGNS)
    for campaign in CAMPAIGNS:
        expected = expected_counts([r for r in seeded.rows if r["campaign_name"] == campaign])
        row = frame[frame["campaign"] == campaign].iloc[0]
        assert {k: int(row[k]) for k in expected} == expected
        assert row["Answer rate"] == pytest.approx(
            100 * expected["answered"] / expected["attempted"]
        )
    table = metrics.comparison_table(frame)
    assert list(table.columns) == ["Campaign", *metrics.KPI_NAMES, "Small samples"]
    notes = dict(zip(table["Campaign"], table["Small samples"], strict=True))
    assert notes[CAMPAIGNS[0]] == ""
    assert "Answer rate (n=" in notes[CAMPAIGNS[3]]


def test_dial_buckets_by_campaign(seeded, cursor):
    frame = metrics.dial_buckets_by_campaign(cursor, Filters(), TZ, seeded.today)
    counts = Counter((r["campaign_name"], r["dial_bucket"]) for r in seeded.rows)
    assert len(frame) == 5 * len(CAMPAIGNS)
    for row in frame.itertuples():
        assert row.leads == counts[(row.campaign, row.bucket)]
    shares = frame.groupby("campaign")["share"].sum()
    assert all(s == pytest.approx(1.0) for s in shares)
    order = list(frame[frame["campaign"] == CAMPAIGNS[0]]["bucket"])
    assert order == ["answered", "NoAnswer", "user_disconnected", "Fail", "Not dialled"]


def test_bucket_counts_whole_selection(seeded, cursor):
    frame = metrics.bucket_counts(cursor, Filters(campaigns=(CAMPAIGNS[2],)), TZ, seeded.today)
    counts = Counter(r["dial_bucket"] for r in seeded.rows if r["campaign_name"] == CAMPAIGNS[2])
    assert dict(zip(frame["bucket"], frame["leads"], strict=True)) == {
        b: counts.get(b, 0) for b in frame["bucket"]
    }


def test_dispositions_by_campaign_top_and_other(seeded, cursor):
    frame = metrics.dispositions_by_campaign(cursor, Filters(), TZ, seeded.today, top=3)
    with_disposition = [r for r in seeded.rows if r["disposition"]]
    overall = Counter(r["disposition"] for r in with_disposition)
    top3 = {d for d, _ in sorted(overall.items(), key=lambda kv: (-kv[1], kv[0]))[:3]}
    assert set(frame.loc[~frame["is_other"], "disposition"]) <= top3
    assert int(frame["leads"].sum()) == len(with_disposition)
    for campaign in CAMPAIGNS:
        part = frame[frame["campaign"] == campaign]
        here = Counter(r["disposition"] for r in with_disposition if r["campaign_name"] == campaign)
        other = sum(n for d, n in here.items() if d not in top3)
        assert int(part.loc[part["is_other"], "leads"].sum()) == other


def test_pareto_sorted_with_cumulative_share(seeded, cursor):
    frame = metrics.disposition_pareto(cursor, Filters(), TZ, seeded.today, top=4)
    top = frame[~frame["is_other"]]
    assert list(top["leads"]) == sorted(top["leads"], reverse=True)
    assert bool(frame.iloc[-1]["is_other"])
    assert frame.iloc[-1]["cumulative_share"] == pytest.approx(1.0)
    assert list(frame["cumulative_share"]) == sorted(frame["cumulative_share"])
    counts = Counter(r["disposition"] for r in seeded.rows if r["disposition"])
    assert int(frame["leads"].sum()) == sum(counts.values())
    cats = dict(zip(top["disposition"], top["category"], strict=True))
    assert all(cats[d] == EXPECTED_CATEGORY[d] for d in cats)


def test_status_bucket_matrix(seeded, cursor):
    matrix = metrics.status_bucket_matrix(cursor, Filters(), TZ, seeded.today)
    counts = Counter((r["lead_status"], r["dial_bucket"]) for r in seeded.rows)
    assert list(matrix.index) == ["Success", "Fail", "Pending"]
    for status in matrix.index:
        for bucket in matrix.columns:
            assert matrix.loc[status, bucket] == counts.get((status, bucket), 0)


def test_sunburst_paths(seeded, cursor):
    frame = metrics.sunburst_paths(cursor, Filters(), TZ, seeded.today)
    assert int(frame["leads"].sum()) == len(seeded.rows)
    none = sum(1 for r in seeded.rows if not r["disposition"])
    assert int(frame.loc[frame["disposition"] == metrics.NO_DISPOSITION, "leads"].sum()) == none


def test_daily_trend_by_local_day(seeded, cursor):
    filters = Filters(range="last_7d")
    frame = metrics.daily_trend(cursor, filters, TZ, seeded.today)
    rows = kept_rows(seeded.rows, filters, seeded.today)
    by_day = Counter(r["updated_at"].astimezone(ZONE).date() for r in rows)
    got = {d.date() if hasattr(d, "date") else d: n for d, n in zip(
        pd.to_datetime(frame["day"]), frame[list(DIAL_BUCKETS)].sum(axis=1), strict=True
    )}  # fmt: skip
    assert got == dict(by_day)
    assert frame["n_answered"].sum() == sum(r["dial_bucket"] == "answered" for r in rows)
    ok = frame["n_attempted"] > 0
    assert (frame.loc[ok, "answer_rate"] * frame.loc[ok, "n_attempted"]).round().tolist() == (
        frame.loc[ok, "n_answered"].tolist()
    )


def test_hour_weekday_uses_local_last_update(seeded, cursor):
    frame = metrics.hour_weekday(cursor, Filters(), TZ, seeded.today)
    cells = Counter(
        (r["updated_at"].astimezone(ZONE).isoweekday(), r["updated_at"].astimezone(ZONE).hour)
        for r in seeded.rows
        if attempted(r)
    )
    got = {(int(w), int(h)): int(n) for w, h, n in frame[["weekday", "hour", "attempted"]].values}
    assert got == dict(cells)


# -- lead rows ------------------------------------------------------------------------------


def test_lead_page_paginates_in_sql_and_masks_phones(seeded, cursor):
    total = metrics.lead_count(cursor, Filters(), TZ, seeded.today)
    assert total == len(seeded.rows)
    first = metrics.lead_page(cursor, Filters(), TZ, seeded.today, limit=25, offset=0)
    second = metrics.lead_page(cursor, Filters(), TZ, seeded.today, limit=25, offset=25)
    assert len(first) == len(second) == 25
    assert not set(first["lead_key"]) & set(second["lead_key"])
    by_key = {r["lead_key"]: r for r in seeded.rows}
    for row in first.itertuples():
        phone = by_key[row.lead_key]["phone_number"]
        digits = "".join(ch for ch in phone if ch.isdigit())
        assert row.Phone.endswith(digits[-4:]) and digits[:-4] not in row.Phone
        assert set(row.Phone[:-4]) == {"•"}
    updated = list(first["Updated"])
    assert updated == sorted(updated, reverse=True)
    assert list(first.columns) == [
        "Campaign",
        "Phone",
        "Name",
        "Status",
        "Dial status",
        "CloudAgent dial status",
        "Disposition",
        "Attempts",
        "Agent",
        "Talk time",
        "Created",
        "Updated",
        "Comments",
        "lead_key",
    ]


def test_lead_page_shows_phones_when_configured(seeded, cursor):
    page = metrics.lead_page(cursor, Filters(), TZ, seeded.today, limit=5, show_phones=True)
    by_key = {r["lead_key"]: r["phone_number"] for r in seeded.rows}
    assert all(p == by_key[k] for p, k in zip(page["Phone"], page["lead_key"], strict=True))


def present(value):
    """A frame's value, or None where the frame holds its missing marker (NaN, NaT)."""
    return None if pd.isna(value) else value


def test_the_page_has_typed_times_and_labelled_statuses(seeded, cursor):
    """On screen the times are the stored moments (the page draws them in the account's zone)
    and the statuses read as the filters name them; CloudAgent's own dial status stays beside."""
    page = metrics.lead_page(cursor, Filters(), TZ, seeded.today, limit=500)
    by_key = {r["lead_key"]: r for r in seeded.rows}
    for row in page.itertuples():
        lead = by_key[row.lead_key]
        assert (present(row.Updated), present(row.Created)) == (
            lead["updated_at"],
            lead["created_at"],
        )
        assert row.Status == LEAD_STATUS_LABELS[lead["lead_status"]]
        assert row._5 == DIAL_STATUS_LABELS[lead["dial_bucket"]]  # "Dial status"
        assert present(row._6) == lead["dial_status"]  # "CloudAgent dial status"
    assert {"No answer", "Customer disconnected"} <= set(page["Dial status"])
    assert "Failed" in set(page["Status"])


def test_exports_keep_the_stored_values_and_local_time_text(seeded, cursor):
    frame = pd.read_csv(
        io.StringIO(metrics.export_csv(cursor, Filters(), TZ, seeded.today).decode("utf-8-sig")),
        dtype=str,
        keep_default_na=False,
    )
    assert list(frame.columns[3:6]) == ["Status", "Dial status", "Dial bucket"]
    assert set(frame["Dial bucket"]) <= set(DIAL_BUCKETS) and "Fail" in set(frame["Status"])
    stamps = sorted(r["updated_at"].astimezone(ZONE).strftime("%Y-%m-%d %H:%M:%S")
                    for r in seeded.rows if r["updated_at"] is not None)  # fmt: skip
    assert sorted(t for t in frame["Updated"] if t) == stamps


@pytest.mark.parametrize(
    ("search", "predicate"),
    [
        ("50%", lambda r: "50%" in (r["comments"] or "")),
        ("off_now", lambda r: "off_now" in (r["comments"] or "")),
        ("_", lambda r: any("_" in (r[c] or "") for c in ("comments", "name", "agent_id"))),
        ("zoë", lambda r: "zoë" in (r["name"] or "").lower()),
        ("agent 2", lambda r: (r["agent_name"] or "").lower() == "agent 2"),
        ("9800000042", lambda r: "9800000042" in r["phone_number"]),
        ("' OR 1=1 --", lambda r: False),
    ],
)
def test_search_is_literal_and_case_insensitive(seeded, cursor, search, predicate):
    expected = sorted(r["lead_key"] for r in seeded.rows if predicate(r))
    count = metrics.lead_count(cursor, Filters(), TZ, seeded.today, search=search)
    page = metrics.lead_page(cursor, Filters(), TZ, seeded.today, search=search, limit=500)
    assert count == len(expected)
    assert sorted(page["lead_key"]) == expected


def test_exports_hold_the_whole_filtered_set(seeded, cursor):
    filters = Filters(statuses=("Fail",))
    expected = len(kept_rows(seeded.rows, filters, seeded.today))
    csv = metrics.export_csv(cursor, filters, TZ, seeded.today).decode("utf-8-sig")
    frame = pd.read_csv(io.StringIO(csv))
    assert len(frame) == expected and "lead_key" not in frame
    xlsx = metrics.export_xlsx(cursor, filters, TZ, seeded.today)
    with zipfile.ZipFile(io.BytesIO(xlsx)) as book:
        sheet = book.read("xl/worksheets/sheet1.xml").decode()
        assert "xl/worksheets/sheet2.xml" not in book.namelist()  # no note: every lead fits
    assert sheet.count("<row ") == expected + 1  # the header row, then every lead
    assert "Customer" in sheet and "•" in sheet  # text cells inline, phones masked


def test_lead_record_masks_phones_everywhere(seeded, cursor):
    record = metrics.lead_record(cursor, CAMPAIGNS[0], "L1")
    assert record["phone_number"].endswith("0001") and "98" not in record["phone_number"]
    assert record["extra"] == {"AltPhone": "••••••••2345", "Region": "West"}
    shown = metrics.lead_record(cursor, CAMPAIGNS[0], "L1", show_phones=True)
    assert shown["phone_number"] == "+91 9800000001"
    assert metrics.lead_record(cursor, CAMPAIGNS[0], "nope") is None


def test_mask_phone():
    assert metrics.mask_phone("+91 98765 43210") == "••••••••3210"
    assert metrics.mask_phone("123") == "123"
    assert metrics.mask_phone(None) is None


# -- options and freshness -----------------------------------------------------------------


def test_options(seeded, cursor):
    names = metrics.campaign_options(cursor, ["Config Only"])
    assert set(names) == {*CAMPAIGNS, "Empty Campaign", "Config Only"}
    dispositions = metrics.disposition_options(cursor)
    counts = Counter(r["disposition"] for r in seeded.rows if r["disposition"])
    assert set(dispositions) == set(counts)
    assert counts[dispositions[0]] == max(counts.values())


def test_freshness_and_sync_tables(seeded, cursor):
    frame = metrics.freshness(cursor)
    assert set(frame["campaign"]) == {*CAMPAIGNS, "Empty Campaign"}
    row = frame[frame["campaign"] == CAMPAIGNS[0]].iloc[0]
    assert row["leads"] == 120 and pd.notna(row["data_as_of"])
    empty = frame[frame["campaign"] == "Empty Campaign"].iloc[0]
    assert empty["leads"] == 0 and pd.isna(empty["data_as_of"])
    assert empty["last_error"] == "campaignName is invalid"
    only = metrics.freshness(cursor, [CAMPAIGNS[2]])
    assert list(only["campaign"]) == [CAMPAIGNS[2]]
    # The pages' header line: the same moments, for the campaigns asked, without reading leads.
    asked = [CAMPAIGNS[1], "Empty Campaign", "Never Heard Of"]
    as_of = metrics.data_as_of(cursor, asked)
    assert list(as_of["campaign"]) == sorted(asked)
    expected = frame.set_index("campaign")["data_as_of"]
    for row in as_of.itertuples():
        if row.campaign == "Never Heard Of":
            assert pd.isna(row.data_as_of)
        else:
            assert row.data_as_of == expected[row.campaign] or (
                pd.isna(row.data_as_of) and pd.isna(expected[row.campaign])
            )
    requests = metrics.sync_requests(cursor)
    assert list(requests["state"]) == ["error", "delivered"]
    failed = metrics.failed_deliveries(cursor)
    assert list(failed["file"]) == ["7.bin"]
    assert metrics.active_requests(cursor) == 0


def test_previous_period_counts(seeded, cursor):
    from lib.view.filters import previous_filters

    filters = Filters(range="last_7d")
    previous = previous_filters(filters, seeded.today)
    rows = kept_rows(seeded.rows, previous, seeded.today)
    start = seeded.today - timedelta(days=13)
    assert all(
        start <= r["updated_at"].astimezone(ZONE).date() < seeded.today - timedelta(days=6)
        for r in rows
    )
    assert metrics.kpi_counts(cursor, previous, TZ, seeded.today) == expected_counts(rows)


def test_best_and_worst_ignore_small_samples():
    table = pd.DataFrame(
        {
            "Campaign": ["a", "b", "c", "d"],
            "Answer rate": [40.0, 55.0, 20.0, 90.0],
            "Success rate": [10.0, 10.0, 10.0, None],
            "Conversion rate": [5.0, 6.0, 7.0, 8.0],
            "Small samples": ["", "", "", "Answer rate (n=7), Conversion rate (n=2)"],
        }
    )
    marks = metrics.best_and_worst(table)
    assert marks[(1, "Answer rate")] == "best" and marks[(2, "Answer rate")] == "worst"
    assert (3, "Answer rate") not in marks  # 90% on 7 attempts does not win
    assert not any(col == "Success rate" for _, col in marks)  # all equal
    assert marks[(2, "Conversion rate")] == "best" and marks[(0, "Conversion rate")] == "worst"


# -- many names: the top N and one "Other" -------------------------------------------------

MANY_DISPOSITIONS = 5_000
MANY_CAMPAIGNS = 60
COMMON = ("Common A", "Common B", "Common C")  # 100, 99, 98 leads: the top of the list


def insert_many_names(store) -> tuple:
    """5,000 distinct dispositions (one lead each, three much more often) in 120 campaigns;
    returns today and the rows."""
    from tests.conftest import _today, insert_rows, make_rows

    today = _today()
    template = next(r for r in make_rows(today) if r["dial_bucket"] == "answered")
    names = [f"Rare {i:04d}" for i in range(MANY_DISPOSITIONS)]
    names += [name for n, name in zip((100, 99, 98), COMMON, strict=True) for _ in range(n)]
    rows = [
        {
            **template,
            "campaign_name": f"Campaign {i % MANY_CAMPAIGNS:02d}" + "x" * (i % 7 == 0),
            "lead_key": f"K{i}",
            "lead_id": f"K{i}",
            "disposition": name,
        }
        for i, name in enumerate(names)
    ]
    insert_rows(store, rows)
    return today, rows


@pytest.fixture
def many_names(fresh_services):
    return insert_many_names(fresh_services.store)


def test_charts_show_the_top_n_and_other_and_still_add_up(many_names, fresh_services):
    today, rows = many_names
    everything = Filters()
    by_campaign = Counter(r["campaign_name"] for r in rows)
    assert len(by_campaign) > metrics.CHART_TOP
    with fresh_services.store.cursor() as cursor:
        pareto = metrics.disposition_pareto(cursor, everything, TZ, today, top=20)
        by_disposition = metrics.dispositions_by_campaign(cursor, everything, TZ, today, top=8)
        buckets = metrics.dial_buckets_by_campaign(cursor, everything, TZ, today)
        sunburst = metrics.sunburst_paths(cursor, everything, TZ, today)
        per_campaign = metrics.campaign_kpis(cursor, everything, TZ, today)

    assert len(pareto) == 20 + 1 and int(pareto["leads"].sum()) == len(rows)
    assert list(pareto["disposition"][:3]) == list(COMMON)
    assert pareto.iloc[-1]["disposition"] == metrics.OTHER
    assert int(pareto.iloc[-1]["leads"]) == len(rows) - 297 - 17  # the rest: 5,000 - 17 rares

    assert by_disposition["campaign"].nunique() == metrics.CHART_TOP + 1
    assert by_disposition["disposition"].nunique() == 8 + 1
    assert int(by_disposition["leads"].sum()) == len(rows)

    top = sorted(by_campaign.items(), key=lambda kv: (-kv[1], kv[0]))[: metrics.CHART_TOP]
    assert buckets["campaign"].nunique() == metrics.CHART_TOP + 1
    assert int(buckets["leads"].sum()) == len(rows)
    assert set(buckets.loc[~buckets["is_other"], "campaign"]) == {c for c, _ in top}
    other = buckets[buckets["is_other"]]
    assert set(other["campaign"]) == {metrics.OTHER_CAMPAIGNS}
    assert int(other["leads"].sum()) == len(rows) - sum(n for _, n in top)

    assert sunburst["disposition"].nunique() <= metrics.CHART_TOP + 1
    assert metrics.OTHER in set(sunburst["disposition"])
    assert int(sunburst["leads"].sum()) == len(rows)

    assert len(per_campaign) == metrics.CHART_TOP + 1
    assert bool(per_campaign.iloc[-1]["is_other"])
    assert int(per_campaign["leads"].sum()) == len(rows)
    assert int(per_campaign["answered"].sum()) == sum(r["dial_bucket"] == "answered" for r in rows)
    table = metrics.comparison_table(per_campaign)
    assert table.iloc[-1]["Campaign"] == metrics.OTHER_CAMPAIGNS
    marked = {row for row, _ in metrics.best_and_worst(table)}
    assert len(table) - 1 not in marked  # "Other campaigns" is not a campaign that competes


def test_option_lists_hold_the_top_n(many_names, fresh_services):
    _, rows = many_names
    with fresh_services.store.cursor() as cursor:
        dispositions = metrics.disposition_options(cursor)
        campaigns = metrics.campaign_options(cursor, ["Config Only"], top=10)
    assert len(dispositions) == metrics.OPTION_TOP
    assert dispositions[:3] == list(COMMON)  # most frequent first
    by_campaign = Counter(r["campaign_name"] for r in rows)
    top = sorted(by_campaign.items(), key=lambda kv: (-kv[1], kv[0]))[:10]
    assert set(campaigns) == {c for c, _ in top} | {"Config Only"}


def test_a_named_value_beyond_the_top_is_offered(many_names, fresh_services):
    with fresh_services.store.cursor() as cursor:
        offered = metrics.disposition_options(cursor, top=5)
        named = ["Rare 4321", "Not stored", offered[0]]
        assert "Rare 4321" not in offered
        result = metrics.with_named(cursor, offered, named, "disposition")
        campaigns = metrics.with_named(cursor, [], ["Campaign 07", "Nope"], "campaign_name")
    assert result == [*offered, "Rare 4321"]
    assert campaigns == ["Campaign 07"]
    with pytest.raises(ValueError):
        metrics.with_named(cursor, [], ["x"], "name; DROP TABLE leads")


def test_a_delivery_waiting_for_a_retry_is_listed_as_retrying(store, cursor):
    """A transient failure keeps the delivery 'received' with its reason: the Sync page lists it
    (as retrying, with its attempts) beside the failed ones; one simply not read yet is not."""
    with store.writing() as writer:
        for state, error in (("received", "the file link answered HTTP 503"), ("received", None)):
            writer.execute(
                "INSERT INTO raw_deliveries (id, sha256, content_type, size_bytes, path, state, "
                "error, attempts) VALUES (nextval('delivery_ids'), ?, 'application/json', 5, "
                "'/data/deliveries/x.body', ?, ?, 2)",
                [f"retry-{error}", state, error],
            )
    failed = metrics.failed_deliveries(cursor)
    assert list(failed["state"]) == ["retrying", "failed"]
    assert failed["error"].iloc[0] == "the file link answered HTTP 503"
    assert failed["attempts"].iloc[0] == 2
