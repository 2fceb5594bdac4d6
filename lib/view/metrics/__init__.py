"""KPI definitions and every aggregate query the pages show, computed in DuckDB, by topic:

- `kpis`: the KPI vocabulary, the tiles' values and the campaign comparison;
- `agents`: the Agents page (per-agent table, top agents by conversions, talk time);
- `breakdowns`: what the charts draw (dial buckets, dispositions, trends);
- `leads`: lead rows, one lead's record, the exports;
- `options`: what the filters offer;
- `sync_status`: freshness and the sync log;
- `deliveries`: the delivery inspector (each delivery's report, its redacted raw body);
- `storage`: retention and the disk (raw bodies, log rows, free space and its floor).

Each query function takes a DuckDB cursor, the validated `Filters`, the account time zone and
(optionally) today's date in that zone, and returns a small pandas frame; all start from
`relation.filtered_groups`. Only `leads` returns lead rows.
"""

from lib.view.metrics.agents import (
    AGENT_COLUMNS,
    AGENT_HELP,
    ALL_CAMPAIGNS,
    SHORT_CALL_SECONDS,
    TALK_BAND_LABELS,
    TALK_COLUMNS,
    TALK_HELP,
    WRAP_UP_PREFIX,
    agent_conversions,
    agent_table,
    table_xlsx,
    talk_time_bands,
    talk_time_by_campaign,
)
from lib.view.metrics.breakdowns import (
    CHART_TOP,
    NO_DISPOSITION,
    OTHER,
    OTHER_CAMPAIGNS,
    WEEKDAYS,
    bucket_counts,
    daily_trend,
    dial_buckets_by_campaign,
    disposition_pareto,
    dispositions_by_campaign,
    hour_weekday,
    status_bucket_matrix,
    sunburst_paths,
)
from lib.view.metrics.deliveries import (
    MAX_DOWNLOAD_BYTES,
    DeliveryDetail,
    delivery_detail,
    recent_deliveries,
    redacted_body,
    seen_fields,
    seen_unknown_values,
)
from lib.view.metrics.kpis import (
    COUNT_SQL,
    KPI_NAMES,
    KPIS,
    SMALL_SAMPLE,
    SMALL_SAMPLE_HELP,
    Kpi,
    KpiValue,
    best_and_worst,
    campaign_kpis,
    comparison_table,
    kpi_counts,
    kpi_values,
    kpis,
    rate,
)
from lib.view.metrics.leads import (
    DEFAULT_SORT,
    EXCEL_MAX_ROWS,
    LEAD_SORTS,
    excel_notice,
    export_csv,
    export_xlsx,
    lead_count,
    lead_page,
    lead_record,
    mask_phone,
)
from lib.view.metrics.options import (
    OPTION_TOP,
    agent_options,
    campaign_options,
    catalog_state,
    disposition_options,
    with_named,
)
from lib.view.metrics.policy import attempts_allowed
from lib.view.metrics.storage import Storage, storage
from lib.view.metrics.sync_status import (
    active_requests,
    data_as_of,
    failed_deliveries,
    freshness,
    imposed_waits,
    sync_requests,
    total_leads,
)

__all__ = [
    "AGENT_COLUMNS",
    "AGENT_HELP",
    "ALL_CAMPAIGNS",
    "CHART_TOP",
    "COUNT_SQL",
    "DEFAULT_SORT",
    "EXCEL_MAX_ROWS",
    "KPIS",
    "KPI_NAMES",
    "LEAD_SORTS",
    "MAX_DOWNLOAD_BYTES",
    "NO_DISPOSITION",
    "OPTION_TOP",
    "OTHER",
    "OTHER_CAMPAIGNS",
    "SHORT_CALL_SECONDS",
    "SMALL_SAMPLE",
    "SMALL_SAMPLE_HELP",
    "TALK_BAND_LABELS",
    "TALK_COLUMNS",
    "TALK_HELP",
    "WEEKDAYS",
    "WRAP_UP_PREFIX",
    "DeliveryDetail",
    "Kpi",
    "KpiValue",
    "Storage",
    "active_requests",
    "agent_conversions",
    "agent_options",
    "agent_table",
    "attempts_allowed",
    "best_and_worst",
    "bucket_counts",
    "campaign_kpis",
    "campaign_options",
    "catalog_state",
    "comparison_table",
    "daily_trend",
    "data_as_of",
    "delivery_detail",
    "dial_buckets_by_campaign",
    "disposition_options",
    "disposition_pareto",
    "dispositions_by_campaign",
    "excel_notice",
    "export_csv",
    "export_xlsx",
    "failed_deliveries",
    "freshness",
    "hour_weekday",
    "imposed_waits",
    "kpi_counts",
    "kpi_values",
    "kpis",
    "lead_count",
    "lead_page",
    "lead_record",
    "mask_phone",
    "rate",
    "recent_deliveries",
    "redacted_body",
    "seen_fields",
    "seen_unknown_values",
    "status_bucket_matrix",
    "storage",
    "sunburst_paths",
    "sync_requests",
    "table_xlsx",
    "talk_time_bands",
    "talk_time_by_campaign",
    "total_leads",
    "with_named",
]
