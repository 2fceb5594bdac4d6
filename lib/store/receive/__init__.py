"""Receiving CloudAgent deliveries: the raw body persisted first, then parsed into a records file.

CloudAgent's delivery format is undocumented (cloudagent-api.md), so every plausible variant is
accepted, and the assumptions live here:

(a) JSON `{"status": .., "uniqueId": .., "campaignName": .., "data": [records]}` (the default);
(b) form-encoded `data=<that JSON text>` (how CloudAgent's per-call callback posts);
(c) the records under `details` or `records` instead of `data`, or nested one level deeper
    (`{"data": {"records": [...]}}`);
(d) a single record object instead of a list;
(e) a bare top-level list of records;
(f) a link (`fileUrl`, `file_url`, `url`, `downloadUrl`, `failedFilePath`) to a CSV or JSON file,
    downloaded over http(s) from an allowed host only, streamed to disk, size- and time-limited.

Parsing never builds Python objects for a large body in the default shape: the byte range of the
records array is located (head and tail of the file only), the cut is proven to be the top-level
records value, and the slice is written as a file holding a top-level JSON array, the shape
DuckDB's `read_json` reads fastest; a large one as several such files, cut between records, which
DuckDB reads in parallel. Anything else goes through `json.loads` (the generic path).
What ingest reads is always a `RecordsFile`: a JSON array, newline-delimited JSON, or CSV.

The modules, in the order a body meets them:
- `raw`: `register_raw` persists the body (fsync, `<id>.body`, its raw_deliveries row); recovery
  after a crash (`adopt_orphans`, `remove_stale_artefacts`).
- `parse`: `parse_delivery`, the entry point; sniffs the shape and runs the JSON, form and link
  paths, which call each other. It uses:
  - `json_slice`: the fast path, the records array cut out of the body by its bytes;
  - `envelope`: where the records, link, uniqueId and campaign are in a parsed document;
  - `form`: splitting and percent-decoding a form body;
  - `links`: which links may be followed, the downloader (`make_fetcher`), gunzip;
  - `csv_check`: refusing a linked CSV file that was cut short.
- `types` (the rejection, the results, the content-type rule) and `files` (bytes of the body
  file, the artefacts derived beside it, the size limit) are shared by all of them.
"""

from lib.store.receive.files import DEFAULT_MAX_BYTES
from lib.store.receive.links import DEFAULT_DOWNLOAD_TIMEOUT_S, check_link, make_fetcher
from lib.store.receive.parse import parse_delivery
from lib.store.receive.raw import (
    adopt_orphans,
    deliveries_dir_for,
    register_raw,
    remove_stale_artefacts,
)
from lib.store.receive.types import (
    GAVE_UP_PREFIX,
    DeliveryRejected,
    Fetcher,
    ParsedDelivery,
    RawDelivery,
    RecordsFile,
    check_content_type,
)

__all__ = [
    "DEFAULT_DOWNLOAD_TIMEOUT_S",
    "DEFAULT_MAX_BYTES",
    "GAVE_UP_PREFIX",
    "DeliveryRejected",
    "Fetcher",
    "ParsedDelivery",
    "RawDelivery",
    "RecordsFile",
    "adopt_orphans",
    "check_content_type",
    "check_link",
    "deliveries_dir_for",
    "make_fetcher",
    "parse_delivery",
    "register_raw",
    "remove_stale_artefacts",
]
