"""Raw persistence and recovery: a received body is hashed, flushed and renamed to `<id>.body`
with its raw_deliveries row before anything reads it; after a crash, bodies without a row are
adopted and parse artefacts left behind are removed."""

from __future__ import annotations

import contextlib
import hashlib
import logging
import os
import re
import threading
from collections.abc import Iterable
from pathlib import Path

from lib.store.receive.types import GAVE_UP_PREFIX, RawDelivery

logger = logging.getLogger(__name__)

_DELIVERY_FILE_RE = re.compile(r"^(\d+)\.body$")


def deliveries_dir_for(store) -> Path:
    """The deliveries folder beside a store's database (the rule of Settings.deliveries_dir)."""
    return store.path.parent / (store.path.stem + ".deliveries")


def _sha256_and_fsync(path: Path) -> tuple[str, int]:
    """The file's sha256 and size, and the file on disk: the flush runs on another thread while
    this one hashes (hashlib and fsync both release the GIL), and is waited for."""
    digest = hashlib.sha256()
    size = 0
    with open(path, "rb+") as handle:
        flushed: list[BaseException | None] = []

        def flush() -> None:
            try:
                os.fsync(handle.fileno())
                flushed.append(None)
            except BaseException as exc:  # re-raised below
                flushed.append(exc)

        flusher = threading.Thread(target=flush, name="delivery-fsync", daemon=True)
        flusher.start()
        try:
            while chunk := handle.read(1024 * 1024):
                digest.update(chunk)
                size += len(chunk)
        finally:
            flusher.join()
        if flushed[0] is not None:
            raise flushed[0]
    return digest.hexdigest(), size


def _fsync(path: Path) -> int:
    """Flushes the file to disk; its size."""
    with open(path, "rb") as handle:
        os.fsync(handle.fileno())
        return os.fstat(handle.fileno()).st_size


def _fsync_dir(directory: Path) -> None:
    descriptor = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(descriptor)
    finally:
        os.close(descriptor)


def register_raw(
    store,
    deliveries_dir,
    tmp_path,
    content_type: str | None,
    source_addr: str | None = None,
    sha256: str | None = None,
) -> RawDelivery:
    """Persists a received body: fsync, atomic rename to `<id>.body`, then its raw_deliveries row.
    `sha256` is the body's digest when the receiver hashed it while writing it (then the file is
    only flushed, not read again).

    Once this returns, a crash loses nothing: `ingest.ingest_pending` finishes the work (a crash
    between the rename and the row leaves a `<id>.body` without a row, which it adopts). A body
    whose sha256 matches a delivery already received or ingested (or given up because reading it
    kept killing the process) is recorded as 'duplicate' and
    its file deleted (the earlier one's file holds the same bytes); `duplicate_of` names that
    delivery, which `ingest.settle_duplicate` waits for and matches to its request.
    """
    deliveries_dir = Path(deliveries_dir)
    deliveries_dir.mkdir(parents=True, exist_ok=True)
    if sha256 is None:
        sha, size = _sha256_and_fsync(Path(tmp_path))
    else:
        sha, size = sha256, _fsync(Path(tmp_path))
    media = (content_type or "")[:200] or None
    return _register_file(store, deliveries_dir, Path(tmp_path), sha, size, media, source_addr)


def _register_file(
    store, deliveries_dir: Path, source: Path, sha: str, size: int, media, source_addr=None
):
    with store.writing() as cursor:
        while True:  # never overwrite a body file, even one the sequence has forgotten
            delivery_id = cursor.execute("SELECT nextval('delivery_ids')").fetchone()[0]
            final = deliveries_dir / f"{delivery_id}.body"
            if not final.exists():
                break
        seen = cursor.execute(
            "SELECT id FROM raw_deliveries WHERE sha256 = ? AND (state IN ('ingested', "
            "'received') OR (state = 'failed' AND starts_with(error, ?))) ORDER BY id LIMIT 1",
            [sha, GAVE_UP_PREFIX],
        ).fetchone()
        if seen is not None:
            same = f"same body as delivery {seen[0]}"
            cursor.execute(
                "INSERT INTO raw_deliveries (id, sha256, content_type, size_bytes, path, state, "
                "error, source_addr) VALUES (?, ?, ?, ?, ?, 'duplicate', ?, ?)",
                [delivery_id, sha, media, size, str(final), same, source_addr],
            )
            with contextlib.suppress(FileNotFoundError):
                source.unlink()
            return RawDelivery(delivery_id, final, sha, size, duplicate_of=seen[0])
        os.replace(source, final)
        _fsync_dir(deliveries_dir)
        cursor.execute(
            "INSERT INTO raw_deliveries (id, sha256, content_type, size_bytes, path, state, "
            "source_addr) VALUES (?, ?, ?, ?, ?, 'received', ?)",
            [delivery_id, sha, media, size, str(final), source_addr],
        )
    return RawDelivery(delivery_id, final, sha, size)


def adopt_orphans(store, deliveries_dir) -> list[RawDelivery]:
    """Registers `<n>.body` files that have no raw_deliveries row (a crash between file and row).

    Each gets a fresh id (the sequence may not have kept the one in its name) and is renamed.
    """
    deliveries_dir = Path(deliveries_dir)
    if not deliveries_dir.is_dir():
        return []
    with store.cursor() as cursor:
        known = {row[0] for row in cursor.execute("SELECT id FROM raw_deliveries").fetchall()}
    adopted = []
    for path in sorted(deliveries_dir.iterdir()):
        match = _DELIVERY_FILE_RE.match(path.name)
        if match is None or int(match.group(1)) in known:
            continue
        sha, size = _sha256_and_fsync(path)
        raw = _register_file(store, deliveries_dir, path, sha, size, None)
        logger.warning("adopted delivery file %s without a row as delivery %d", path.name, raw.id)
        adopted.append(raw)
    return adopted


def remove_stale_artefacts(deliveries_dir, keep_ids: Iterable[int] = ()) -> int:
    """Deletes parse artefacts (`<id>.*.slice.json`, `.records.json`, `.form.json`, `.download`)
    left by a crash, except those of the ids given. Returns how many were removed."""
    deliveries_dir = Path(deliveries_dir)
    if not deliveries_dir.is_dir():
        return 0
    keep = {str(i) for i in keep_ids}
    removed = 0
    for path in deliveries_dir.iterdir():
        stem, dot, rest = path.name.partition(".")
        if not (dot and stem.isdigit() and stem not in keep):
            continue
        if rest.endswith((".slice.json", ".records.json", ".form.json", ".download")):
            with contextlib.suppress(FileNotFoundError):
                path.unlink()
                removed += 1
    return removed
