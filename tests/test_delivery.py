"""Receiving and parsing deliveries: content types, raw persistence, every body variant, the
fast records slice, file links (served by a real HTTP server on 127.0.0.1)."""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlencode

import duckdb
import pytest

from lib.store import Store
from lib.store.receive import (
    DeliveryRejected,
    check_content_type,
    check_link,
    make_fetcher,
    parse_delivery,
    register_raw,
)
from tests.support.file_host import csv_bytes

RECORDS = [
    {"LeadID": "L1", "PhoneNumber": "9800000001", "Status": "Success", "Comments": "a ] b"},
    {"LeadID": "L2", "PhoneNumber": "9800000002", "Status": "", "Comments": '"data":[1]'},
]


def _write(tmp_path: Path, body: bytes | str, name: str = "1.body") -> Path:
    path = tmp_path / name
    path.write_bytes(body.encode() if isinstance(body, str) else body)
    return path


def _records_of(parsed) -> list[dict]:
    """What DuckDB will read, read back independently with json/csv."""
    source = parsed.records_source
    if source.format == "json":
        return json.loads(source.path.read_text(encoding="utf-8-sig"))
    if source.format == "ndjson":
        return [json.loads(line) for line in source.path.read_text().splitlines() if line]
    import csv

    with open(source.path, newline="", encoding="utf-8-sig") as handle:
        return list(csv.DictReader(handle))


# -- content types -------------------------------------------------------------------------


@pytest.mark.parametrize(
    "content_type",
    [
        "application/json",
        "application/json; charset=utf-8",
        "APPLICATION/JSON;charset=UTF-8",
        "text/json",
        "application/vnd.cloudagent+json",
        "text/plain",
        "application/x-www-form-urlencoded",
        "application/x-www-form-urlencoded; charset=utf-8",
        "",
        None,
    ],
)
def test_accepted_content_types(content_type):
    check_content_type(content_type)


@pytest.mark.parametrize(
    "content_type",
    [
        "multipart/form-data; boundary=x",
        "image/png",
        "application/octet-stream",
        "text/html",
        "application/xml",
        "application/json; charset=latin-1",
    ],
)
def test_other_content_types_get_415(content_type):
    with pytest.raises(DeliveryRejected) as caught:
        check_content_type(content_type)
    assert caught.value.status_code == 415
    assert caught.value.message


# -- raw persistence -----------------------------------------------------------------------


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    store = Store(tmp_path / "t.duckdb")
    yield store
    store.close()


def test_register_raw_renames_hashes_and_records(store, tmp_path):
    deliveries = tmp_path / "t.deliveries"
    deliveries.mkdir()
    body = b'{"data": []}'
    part = _write(deliveries, body, "incoming.part")
    raw = register_raw(store, deliveries, str(part), "application/json")
    assert not raw.duplicate
    assert raw.path == deliveries / f"{raw.id}.body"
    assert raw.path.read_bytes() == body
    assert not part.exists()
    assert raw.sha256 == hashlib.sha256(body).hexdigest() and raw.size == len(body)
    row = (
        store.cursor()
        .execute(
            "SELECT state, sha256, size_bytes, path, content_type FROM raw_deliveries WHERE id = ?",
            [raw.id],
        )
        .fetchone()
    )
    assert row == ("received", raw.sha256, len(body), str(raw.path), "application/json")


def test_register_raw_marks_a_repeated_body_duplicate(store, tmp_path):
    deliveries = tmp_path / "d"
    first = register_raw(store, deliveries, _write(tmp_path, b"[1]", "a.part"), None)
    second = register_raw(store, deliveries, _write(tmp_path, b"[1]", "b.part"), None)
    other = register_raw(store, deliveries, _write(tmp_path, b"[2]", "c.part"), None)
    assert (first.duplicate, second.duplicate, other.duplicate) == (False, True, False)
    assert not second.path.exists() and not (tmp_path / "b.part").exists()
    states = store.cursor().execute("SELECT id, state FROM raw_deliveries ORDER BY id").fetchall()
    assert states == [(first.id, "received"), (second.id, "duplicate"), (other.id, "received")]


def test_register_raw_never_overwrites_an_existing_body(store, tmp_path):
    deliveries = tmp_path / "d"
    deliveries.mkdir()
    next_id = store.cursor().execute("SELECT nextval('delivery_ids')").fetchone()[0] + 1
    orphan = _write(deliveries, b"orphan", f"{next_id}.body")
    raw = register_raw(store, deliveries, _write(tmp_path, b"new", "x.part"), None)
    assert raw.id != next_id
    assert orphan.read_bytes() == b"orphan"


# -- body variants -------------------------------------------------------------------------


def _envelope(**records_under) -> dict:
    return {"status": "success", "uniqueId": "u-1", "campaignName": "Camp", **records_under}


@pytest.mark.parametrize(
    ("body", "content_type", "variant"),
    [
        (json.dumps(_envelope(data=RECORDS)), "application/json", "json/data"),
        (json.dumps(_envelope(details=RECORDS)), "application/json", "json/details"),
        (json.dumps(_envelope(records=RECORDS)), "text/plain", "json/records"),
        (json.dumps(_envelope(Data=RECORDS)), "application/json", "json/data"),
        (json.dumps(_envelope(data={"records": RECORDS})), "application/json", "json/records"),
        (json.dumps(_envelope(data={"total": 2, "details": RECORDS})), None, "json/details"),
        (json.dumps(RECORDS), "application/json", "json/list"),
        (json.dumps(_envelope(data=RECORDS), indent=4), "application/json", "json/data"),
        ("\ufeff" + json.dumps(_envelope(data=RECORDS)), "application/json", "json/data"),
        (
            urlencode({"data": json.dumps(_envelope(data=RECORDS))}),
            "application/x-www-form-urlencoded",
            "form/data",
        ),
        (
            urlencode({"data": json.dumps(RECORDS), "uniqueId": "u-1", "campaignName": "Camp"}),
            "application/x-www-form-urlencoded",
            "form/list",
        ),
        (  # mislabelled: a form body sent as JSON, and no content type at all
            urlencode({"data": json.dumps(_envelope(records=RECORDS))}),
            "application/json",
            "form/records",
        ),
        (urlencode({"data": json.dumps(_envelope(data=RECORDS))}), None, "form/data"),
    ],
)
def test_every_inline_variant_yields_the_records(tmp_path, body, content_type, variant):
    parsed = parse_delivery(_write(tmp_path, body), content_type)
    try:
        assert parsed.variant == variant
        assert _records_of(parsed) == RECORDS
        if variant != "json/list" and not variant.endswith("/list"):
            assert (parsed.unique_id, parsed.campaign_name) == ("u-1", "Camp")
    finally:
        parsed.cleanup()
    assert not [p for p in tmp_path.iterdir() if p.name != "1.body"]  # cleanup left nothing


def test_single_record_variants(tmp_path):
    record = RECORDS[0]
    for body in (json.dumps(_envelope(data=record)), json.dumps(record)):
        parsed = parse_delivery(_write(tmp_path, body), "application/json")
        assert _records_of(parsed) == [record]
        parsed.cleanup()
    form = urlencode({"LeadID": "L9", "PhoneNumber": "98", "CampaignName": "F"})
    parsed = parse_delivery(_write(tmp_path, form), "application/x-www-form-urlencoded")
    assert _records_of(parsed) == [{"LeadID": "L9", "PhoneNumber": "98", "CampaignName": "F"}]
    parsed.cleanup()


def test_a_lone_record_with_a_url_field_is_a_record_and_file_links_stay_links(tmp_path):
    record = {"LeadID": "L1", "PhoneNumber": "98", "URL": "https://shop.example/l1"}
    parsed = parse_delivery(_write(tmp_path, json.dumps(record)), None)
    assert _records_of(parsed) == [record]
    parsed.cleanup()
    link = {"id": "job-7", "fileUrl": "http://127.0.0.1/x.csv"}  # "id" would map to LeadID
    with pytest.raises(DeliveryRejected) as caught:
        parse_delivery(_write(tmp_path, json.dumps(link)), None)
    assert "links" in caught.value.message


def test_double_encoded_json_is_tolerated(tmp_path):
    body = json.dumps(json.dumps(_envelope(data=RECORDS)))
    parsed = parse_delivery(_write(tmp_path, body), "application/json")
    assert _records_of(parsed) == RECORDS and parsed.campaign_name == "Camp"
    parsed.cleanup()
    body = json.dumps(_envelope(data=json.dumps(RECORDS)))
    parsed = parse_delivery(_write(tmp_path, body), "application/json")
    assert _records_of(parsed) == RECORDS
    parsed.cleanup()


def test_empty_and_null_records_mean_no_records(tmp_path):
    for value in ([], None):
        parsed = parse_delivery(_write(tmp_path, json.dumps(_envelope(data=value))), None)
        assert _records_of(parsed) == []
        assert parsed.campaign_name == "Camp"
        parsed.cleanup()


def test_ndjson_body(tmp_path):
    body = "\n".join(json.dumps(r) for r in RECORDS) + "\n"
    parsed = parse_delivery(_write(tmp_path, body), "application/json")
    assert parsed.records_source.format == "ndjson"
    assert _records_of(parsed) == RECORDS


# -- the fast path -------------------------------------------------------------------------


def test_fast_path_slices_the_exact_array_and_proves_the_cut(tmp_path):
    array = json.dumps(RECORDS, indent=2).encode()
    tricky_meta = {"note": 'x "data": [ y', "errors": [], "summary": {"rows": [2]}}
    body = (
        b'{"status":"success","message":"has \\"data\\":[ inside","uniqueId":"u-1",'
        + b'"data" :\n '
        + array
        + b", "
        + json.dumps(tricky_meta).encode()[1:-1]
        + b',"campaignName":"Camp"}'
    )
    assert json.loads(body)["data"] == RECORDS  # the body is what it claims
    parsed = parse_delivery(_write(tmp_path, body), "application/json")
    assert parsed.fallback is not None  # a slice: no parser has read the records yet
    assert parsed.records_source.path.read_bytes() == array
    assert (parsed.unique_id, parsed.campaign_name) == ("u-1", "Camp")
    assert parsed.variant == "json/data"
    parsed.cleanup()


def test_fast_path_with_records_first_and_nested(tmp_path):
    body = json.dumps({"data": {"records": RECORDS, "total": 2}, "uniqueId": "u-1"})
    parsed = parse_delivery(_write(tmp_path, body), "application/json")
    assert parsed.fallback is not None and _records_of(parsed) == RECORDS
    assert parsed.unique_id == "u-1" and parsed.variant == "json/records"
    parsed.cleanup()


def test_a_wrong_cut_is_caught_by_duckdb_and_the_fallback_is_right(tmp_path):
    # "details" and "data" both present: the records are under "data" (first in priority),
    # while the text search meets "details" first. Cutting from details' "[" to data's "]"
    # leaves a valid document around the cut; the slice itself is not one array, which DuckDB
    # refuses (ingest then takes the fallback).
    body = json.dumps({"details": [{"x": 1}], "data": RECORDS, "campaignName": "Camp"})
    parsed = parse_delivery(_write(tmp_path, body), "application/json")
    if parsed.fallback is not None:
        with pytest.raises(duckdb.InvalidInputException):
            duckdb.sql(
                f"SELECT * FROM read_json_objects('{parsed.records_source.path}', format='array')"
            ).fetchall()
        parsed.cleanup()
        parsed = parsed.fallback()
    assert _records_of(parsed) == RECORDS
    parsed.cleanup()


def test_fast_path_declines_what_it_cannot_prove(tmp_path):
    # Invalid JSON after the array: no proven cut, the generic path rejects it.
    body = '{"data": ' + json.dumps(RECORDS) + ', "x": }'
    with pytest.raises(DeliveryRejected) as caught:
        parse_delivery(_write(tmp_path, body), "application/json")
    assert caught.value.status_code == 400


def test_fast_path_fallback_parses_the_whole_body(tmp_path):
    # The cut is valid but the records inside are not: the fallback (generic) gives the 400.
    body = '{"data": [{"LeadID": "L1"}, {"LeadID": ]}'
    parsed = parse_delivery(_write(tmp_path, body), "application/json")
    assert parsed.fallback is not None
    with pytest.raises(DeliveryRejected) as caught:
        parsed.fallback()
    assert caught.value.status_code == 400 and "not valid JSON" in caught.value.message
    parsed.cleanup()


# -- rejections ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("body", "content_type", "words"),
    [
        (b"", "application/json", "empty"),
        (b"not json at all", "application/json", "not valid JSON"),
        (b'{"data": [ {"Phone', "application/json", "not valid JSON"),
        (b"\xff\xfe\x00garbage", "application/json", "UTF-8"),
        (b'{"data": ["\xff"]}', "application/json", "UTF-8"),
        (b'{"data": [1, 2, 3]}', "application/json", "JSON object"),
        (b'{"data": "nope"}', "application/json", "not a list"),
        (b'{"status": "success", "uniqueId": "u"}', "application/json", "no records"),
        (b'{"data": {"total": 3}}', "application/json", "no records"),
        (b"[1, 2]", "application/json", "JSON object"),
        (b"42", "application/json", "JSON object or a list"),
        (b'{"data": [NaN]}', "application/json", "JSON object"),  # read as the text NaN
        (b"[" * 100_000 + b"]" * 100_000, "application/json", "JSON"),
        (b"data=%FF%FE", "application/x-www-form-urlencoded", "UTF-8"),
        (b"data=not-json", "application/x-www-form-urlencoded", "data"),
        (b"a=1&b=2", "application/x-www-form-urlencoded", "no records"),
        (
            b'{"status": "error", "message": "Max limit exceeded", "uniqueId": "u"}',
            "application/json",
            "Max limit exceeded",
        ),
        (b'{"fileUrl": "http://127.0.0.1/x.csv"}', "application/json", "links"),
    ],
)
def test_unparseable_bodies_get_a_short_400(tmp_path, body, content_type, words):
    with pytest.raises(DeliveryRejected) as caught:
        parsed = parse_delivery(_write(tmp_path, body), content_type)
        if parsed.fallback is not None:  # what ingest does when DuckDB cannot read the slice
            parsed.cleanup()
            parse_delivery(_write(tmp_path, body), content_type, fast=False)
    assert caught.value.status_code == 400
    assert words in caught.value.message
    assert len(caught.value.message) < 200
    assert str(tmp_path) not in caught.value.message


# -- file links ----------------------------------------------------------------------------


@pytest.mark.parametrize("key", ["fileUrl", "file_url", "url", "downloadUrl", "failedFilePath"])
def test_link_variants_download_json_and_csv(tmp_path, file_host, key):
    file_host.files["/r.json"] = json.dumps(RECORDS).encode()
    file_host.files["/r.csv"] = csv_bytes(RECORDS)
    file_host.files["/wrapped.json"] = json.dumps(_envelope(records=RECORDS)).encode()
    fetch = make_fetcher(["127.0.0.1"], max_bytes=10_000, timeout_s=5)
    for path in ("/r.json", "/r.csv", "/wrapped.json"):
        body = json.dumps({"uniqueId": "u-1", "campaignName": "Camp", key: file_host.base + path})
        parsed = parse_delivery(_write(tmp_path, body), "application/json", fetch_file=fetch)
        assert _records_of(parsed) == RECORDS, path
        assert (parsed.unique_id, parsed.campaign_name) == ("u-1", "Camp")
        assert parsed.variant.startswith("json/link")
        parsed.cleanup()
    assert [p.name for p in tmp_path.iterdir()] == ["1.body"]


def test_a_gzipped_linked_file_is_unpacked_within_the_limit(tmp_path, file_host):
    import gzip

    file_host.files["/r.csv.gz"] = gzip.compress(csv_bytes(RECORDS))
    file_host.files["/bomb.json.gz"] = gzip.compress(b"[" + b" " * 50_000 + b"]")
    file_host.files["/broken.gz"] = b"\x1f\x8b not really gzip"
    fetch = make_fetcher(["127.0.0.1"], max_bytes=10_000, timeout_s=5)
    body = _write(tmp_path, json.dumps({"fileUrl": file_host.base + "/r.csv.gz"}))
    parsed = parse_delivery(body, None, fetch_file=fetch, max_bytes=10_000)
    assert _records_of(parsed) == RECORDS
    parsed.cleanup()
    for path, status in (("/bomb.json.gz", 413), ("/broken.gz", 400)):
        body = _write(tmp_path, json.dumps({"fileUrl": file_host.base + path}))
        with pytest.raises(DeliveryRejected) as caught:
            parse_delivery(body, None, fetch_file=fetch, max_bytes=10_000)
        assert caught.value.status_code == status
    assert [p.name for p in tmp_path.iterdir()] == ["1.body"]


def test_link_inside_data_and_beside_an_empty_list(tmp_path, file_host):
    file_host.files["/r.csv"] = csv_bytes(RECORDS)
    fetch = make_fetcher(["127.0.0.1"], max_bytes=10_000, timeout_s=5)
    url = file_host.base + "/r.csv"
    for doc in (
        {"data": {"total": 2, "failedFilePath": url}, "campaignName": "Camp"},
        {"data": [], "fileUrl": url, "campaignName": "Camp"},
    ):
        parsed = parse_delivery(_write(tmp_path, json.dumps(doc)), None, fetch_file=fetch)
        assert _records_of(parsed) == RECORDS
        parsed.cleanup()


def test_a_linked_csv_cut_inside_its_header_is_refused_and_a_whole_header_alone_is_not(
    tmp_path, file_host
):
    # An empty refresh is a CSV holding only its header; the sandbox's `link_truncated` fault
    # cuts that to half a line, which must be refused, not stored as an empty delivery.
    from lib.sandbox.app import _truncate

    header = b'"LeadID","PhoneNumber","Name","Status","DialStatus","Comments"'
    cut = {
        "/sandbox-cut.csv": _truncate(header + b"\n"),  # b'"LeadID","PhoneNumber","Name","'
        "/in-a-quoted-name.csv": b'"LeadID","PhoneNumber","Sta',
        "/in-a-bare-name.csv": b"LeadID,PhoneNumber,DialSt",
        "/after-a-separator.csv": b"LeadID;PhoneNumber;",
        "/with-a-bom.csv": b"\xef\xbb\xbfLeadID,Phone_Nu",
    }
    whole = {
        "/header-and-newline.csv": header + b"\n",
        "/header-crlf.csv": header + b"\r\n",
        "/header-no-newline.csv": header,
        "/extra-field-last.csv": b"LeadID,PhoneNumber,Zone",
        "/semicolons.csv": b'"LeadID";"PhoneNumber";"Status"',
        "/rows-no-newline.csv": csv_bytes(RECORDS).rstrip(b"\r\n"),
    }
    file_host.files.update(cut | whole)
    fetch = make_fetcher(["127.0.0.1"], max_bytes=10_000, timeout_s=5)
    for path in cut:
        body = json.dumps(
            {"uniqueId": "u-1", "campaignName": "Camp", "fileUrl": file_host.base + path}
        )
        with pytest.raises(DeliveryRejected) as caught:
            parse_delivery(_write(tmp_path, body), "application/json", fetch_file=fetch)
        assert caught.value.status_code == 400, path
        assert "the linked CSV file is cut short" in caught.value.message, path
        assert (caught.value.unique_id, caught.value.campaign_name) == ("u-1", "Camp")
        assert [p.name for p in tmp_path.iterdir()] == ["1.body"], path  # the download is gone
    for path in whole:
        body = json.dumps({"fileUrl": file_host.base + path})
        parsed = parse_delivery(_write(tmp_path, body), "application/json", fetch_file=fetch)
        assert parsed.variant == "json/link/csv", path
        names = duckdb.sql(
            f"SELECT * FROM read_csv('{parsed.records_source.path}', all_varchar = true, "
            "header = true)"
        )
        expected = RECORDS if path == "/rows-no-newline.csv" else []
        assert [dict(zip(names.columns, row, strict=True)) for row in names.fetchall()] == [
            {k: v or None for k, v in r.items()} for r in expected
        ], path
        parsed.cleanup()


@pytest.mark.parametrize(
    ("url", "allowed"),
    [
        ("ftp://127.0.0.1/x.csv", ["127.0.0.1"]),
        ("file:///etc/passwd", ["127.0.0.1"]),
        ("http://10.0.0.1/x.csv", ["127.0.0.1"]),
        ("http://127.0.0.1.evil.example/x.csv", ["127.0.0.1"]),
        ("http://127.0.0.1@evil.example/x.csv", ["127.0.0.1"]),
        ("http://user:pw@127.0.0.1/x.csv", ["127.0.0.1"]),
        ("http://127.0.0.1:9/x.csv", ["127.0.0.1:8000"]),
        ("http://127.0.0.1/x.csv", []),
        ("http://[::1/x", ["::1"]),
        ("javascript:alert(1)", ["127.0.0.1"]),
    ],
)
def test_links_outside_the_allowed_hosts_are_refused(url, allowed):
    with pytest.raises(DeliveryRejected) as caught:
        check_link(url, allowed)
    assert caught.value.status_code == 400


def test_allowed_host_forms():
    assert check_link("https://API.example.com/f.csv", ["api.example.com"])
    assert check_link("http://127.0.0.1:8000/f", ["127.0.0.1:8000"])
    assert check_link("http://127.0.0.1:8001/f", ["http://127.0.0.1:8001"])
    assert check_link("https://h.example/some/path/f", ["https://h.example/some/path"])


def test_fetcher_refuses_before_connecting_and_on_redirect_elsewhere(tmp_path, file_host):
    fetch = make_fetcher(["127.0.0.1"], max_bytes=10_000, timeout_s=5)
    with pytest.raises(DeliveryRejected):
        fetch(f"http://localhost:{file_host.port}/r.csv", tmp_path / "x")
    assert file_host.requests == []
    file_host.files["/r.csv"] = b"a,b\n1,2\n"
    fetch(f"{file_host.base}/redirect-to/{file_host.base}/r.csv", tmp_path / "ok")
    assert (tmp_path / "ok").read_bytes() == b"a,b\n1,2\n"
    with pytest.raises(DeliveryRejected) as caught:
        fetch(f"{file_host.base}/redirect-to/http://10.1.2.3/r.csv", tmp_path / "y")
    assert caught.value.status_code == 400


def test_fetcher_limits_size_status_and_time(tmp_path, file_host):
    file_host.files["/big.csv"] = b"x" * 5000
    small = make_fetcher(["127.0.0.1"], max_bytes=1000, timeout_s=5)
    with pytest.raises(DeliveryRejected) as caught:
        small(file_host.base + "/big.csv", tmp_path / "a")
    assert caught.value.status_code == 413
    with pytest.raises(DeliveryRejected) as caught:
        small(file_host.base + "/missing.csv", tmp_path / "b")
    assert caught.value.status_code == 502
    file_host.files["/slow.csv"] = b"a\n1\n"
    quick = make_fetcher(["127.0.0.1"], max_bytes=1000, timeout_s=0.5)
    started = time.monotonic()
    with pytest.raises(DeliveryRejected) as caught:
        quick(file_host.base + "/slow.csv", tmp_path / "c")
    assert caught.value.status_code == 504
    assert time.monotonic() - started < 2.5


def test_link_to_an_unreachable_port_is_a_clean_error(tmp_path):
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    fetch = make_fetcher(["127.0.0.1"], timeout_s=2)
    with pytest.raises(DeliveryRejected) as caught:
        fetch(f"http://127.0.0.1:{port}/x.csv", tmp_path / "x")
    assert caught.value.status_code == 502


# -- the fast path in pieces (a large slice, read in parallel) -----------------------------

TRICKY_RECORDS = [
    {"LeadID": "L1", "Comments": 'ends with },{"LeadID": "fake"', "Tags": [{"a": 1}, {"b": 2}]},
    {"LeadID": "L2", "Comments": "},{", "Nested": {"x": [{"y": '},{"z":1}'}, {}]}},
    {"LeadID": "L3", "Comments": 'a \\ backslash }, {"k": 1}', "Empty": {}},
    {},
    {"LeadID": "L5", "Comments": "plain"},
]


def _duckdb_records(files: list[Path]) -> list[dict]:
    """The records DuckDB reads from the pieces, in order (each piece read on its own)."""
    return [
        json.loads(row[0])
        for path in files
        for row in duckdb.sql(
            f"SELECT json FROM read_json_objects('{path}', format='array')"
        ).fetchall()
    ]


def test_every_cut_duckdb_accepts_keeps_the_records(tmp_path):
    # The proof in `_split_cuts`: a cut that is not between two top-level records leaves a
    # piece DuckDB refuses. Tried at every place the boundary pattern matches, spaced or not.
    from lib.store.receive.json_slice import _RECORD_BOUNDARY_RE, _write_pieces

    for text in (json.dumps(TRICKY_RECORDS), json.dumps(TRICKY_RECORDS, indent=1)):
        body = _write(tmp_path, text)
        data = body.read_bytes()
        right = wrong = 0
        position = 0
        while (found := _RECORD_BOUNDARY_RE.search(data, position)) is not None:
            position = found.start() + 1  # overlapping matches too: `}, {}, {`
            cut = (found.start(), data.index(b"{", found.start() + 1))
            temp: list[Path] = []
            pieces = _write_pieces(body, 0, len(data) - 1, [cut], temp)
            try:
                records = _duckdb_records(list(pieces))
            except duckdb.InvalidInputException:
                wrong += 1
                continue
            finally:
                for path in temp:
                    path.unlink()
            assert records == TRICKY_RECORDS
            right += 1
        assert right == len(TRICKY_RECORDS) - 1 and wrong >= 2, (right, wrong)


def test_a_large_slice_is_written_in_pieces_that_hold_every_record(tmp_path, monkeypatch):
    import lib.store.receive.json_slice

    monkeypatch.setattr(lib.store.receive.json_slice, "_SPLIT_MIN_BYTES", 2_000)
    records = [
        {"LeadID": f"L{i}", "Comments": '},{"LeadID": "x"}' if i % 7 == 0 else f"c{i}"}
        for i in range(400)
    ]
    body = _write(tmp_path, json.dumps({"uniqueId": "u", "data": records, "campaignName": "C"}))
    parsed = parse_delivery(body, "application/json")
    source = parsed.records_source
    assert len(source.files) >= 2 and source.path == source.files[0]
    assert _duckdb_records(list(source.files)) == records
    assert parsed.fallback is not None  # DuckDB refusing a piece: the one-file slice
    whole = parsed.fallback()
    assert len(whole.records_source.files) == 1 and _records_of(whole) == records
    assert whole.fallback is not None  # and then the generic parse
    parsed.cleanup()
    whole.cleanup()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["1.body"]
