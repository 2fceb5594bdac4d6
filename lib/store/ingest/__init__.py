"""Set-based ingest of delivered records into `leads`: one transaction per delivery.

DuckDB reads the records with every field as VARCHAR and one SELECT maps them to the `leads`
columns; the newest `updated_at` wins. No per-record Python anywhere. The modules, in the order
a delivery goes through them:

- `lifecycle.py`: the entry points (ingest, recovery, retries, duplicates), attempts counted and
  given up, transient failures kept for a retry;
- `flights.py`: which deliveries are being ingested (one ingest of a delivery at a time) and
  when those that failed transiently are tried again;
- `transaction.py`: the delivery's one transaction (leads, lead summary, sync request, sync
  state, raw delivery and data version change together);
- `records.py`: reading the records file (JSON array, possibly in pieces, NDJSON or CSV) and its
  limits;
- `mapping.py`: which fields are read, and how delivered fields become `leads` columns (the
  operators' mapping from lib/store/mappings.py, the value formats from `formats.py`);
- `report.py`: what the delivery inspector shows, written with the delivery;
- `write.py`: the rows into `leads` (a direct insert on a first load, else update + insert);
- `phases.py`: phase timings, logged at DEBUG (by `lib.store.ingest.transaction`, a child of
  the `lib.store.ingest` logger that tests and bench/ingest_probe.py set to DEBUG).
"""

from lib.store.ingest.lifecycle import (
    MAX_ATTEMPTS,
    BodyPruned,
    ingest_delivery,
    ingest_pending,
    reingest_delivery,
    retry_pending,
    settle_duplicate,
)
from lib.store.ingest.transaction import IngestResult, clear_leads

__all__ = [
    "MAX_ATTEMPTS",
    "BodyPruned",
    "IngestResult",
    "clear_leads",
    "ingest_delivery",
    "ingest_pending",
    "reingest_delivery",
    "retry_pending",
    "settle_duplicate",
]
