"""The DuckDB file missing, read-only, locked, not a database, or from another schema version.

Each case gives a clear message and never a traceback in the browser: the server still starts,
`/api/health` answers 503 with the message, and the page shows it (checked with AppTest, in a
child process where the file's permissions must hold even for root). An older schema is
migrated with its data intact; a newer one, or a failed upgrade, leaves the file untouched.
"""

from __future__ import annotations

import json
import os
import shutil
import stat
import subprocess
import sys
from contextlib import contextmanager
from pathlib import Path
from unittest import mock

import duckdb
import httpx
import pytest

from lib.store import Store, StoreError
from lib.store import schema as store_module
from lib.store.schema import MIGRATIONS, SCHEMA_VERSION
from tests.support.server import PROJECT_ROOT, ServerProcess

# Root ignores file permissions; without these capabilities it must obey them like anyone.
NO_OVERRIDE = [
    "setpriv",
    "--bounding-set=-dac_override,-dac_read_search",
    "--inh-caps=-dac_override,-dac_read_search",
]
HAS_SETPRIV = shutil.which("setpriv") is not None
needs_setpriv = pytest.mark.skipif(not HAS_SETPRIV, reason="setpriv (util-linux) not installed")


@contextmanager
def _without_root_override():
    """ServerProcess children run with file permissions enforced (even when the tests are root)."""
    real_popen = subprocess.Popen

    def popen(command, *args, **kwargs):
        return real_popen([*NO_OVERRIDE, *command], *args, **kwargs)

    with mock.patch("tests.support.server.subprocess.Popen", popen):
        yield


@contextmanager
def _health_status_counts_as_up(status: int):
    """ServerProcess.start waits for a 200 from /api/health; here `status` means "up" too."""
    real_get = httpx.get

    def get(url, *args, **kwargs):
        response = real_get(url, *args, **kwargs)
        if response.status_code == status and url.endswith("/api/health"):
            response.status_code = 200
        return response

    with mock.patch("tests.support.server.httpx.get", get):
        yield


def _start_failing(data_dir: Path, env: dict | None = None, restricted: bool = False):
    env = {"DIALSTATUS_SYNC_ENABLED": "false", **(env or {})}
    server = ServerProcess(data_dir, env=env)
    with _health_status_counts_as_up(503):
        if restricted:
            with _without_root_override():
                return server.start()
        return server.start()


def _health(server: ServerProcess) -> httpx.Response:
    return httpx.get(server.base_url + "/api/health", timeout=10)


def _page_run(db: Path, restricted: bool = False, secret: bool = True) -> dict:
    """Runs the dashboard's entry script once with AppTest in a child process; returns what it
    showed: error texts and uncaught exceptions."""
    script = (
        "import json, sys\n"
        "from streamlit.testing.v1 import AppTest\n"
        "at = AppTest.from_file('dashboard.py', default_timeout=60).run()\n"
        "print(json.dumps({'errors': [e.value for e in at.error],"
        " 'exceptions': [str(e.value) for e in at.exception]}))\n"
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DIALSTATUS_", "CLOUDAGENT_"))}
    env.update(
        {
            "DIALSTATUS_DB": str(db),
            "DIALSTATUS_SECRETS_FILE": str(db.parent / "no-secrets.toml"),
        }
    )
    if secret:
        env["DIALSTATUS_CALLBACK_SECRET"] = "page-check-secret-0123456789"
    command = [*(NO_OVERRIDE if restricted else []), sys.executable, "-c", script]
    result = subprocess.run(
        command, cwd=PROJECT_ROOT, env=env, capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stderr[-2000:]
    return json.loads(result.stdout.strip().splitlines()[-1])


def _assert_clear(server: ServerProcess, phrase: str) -> str:
    response = _health(server)
    assert response.status_code == 503
    message = response.json()["message"]
    assert phrase in message, message
    server.stop()
    log = server.log_text()
    assert "Traceback" not in log, log[-3000:]
    assert phrase in log  # the operator reads it in the server log too
    return message


def _make_db(data_dir: Path) -> Path:
    """A normal database made by a server run (schema, callback secret)."""
    server = ServerProcess(data_dir, env={"DIALSTATUS_SYNC_ENABLED": "false"}).start()
    server.stop()
    return data_dir / "dialstatus.duckdb"


# -- missing ------------------------------------------------------------------------------------


def test_a_missing_database_is_created_with_its_folders(tmp_path):
    data_dir = tmp_path / "new" / "deep"
    server = ServerProcess(data_dir, env={"DIALSTATUS_SYNC_ENABLED": "false"})
    server.start()
    try:
        assert server.health()["status"] == "ok"
    finally:
        server.stop()
    with duckdb.connect(str(data_dir / "dialstatus.duckdb"), read_only=True) as con:
        version = con.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone()
    assert version == (SCHEMA_VERSION,)


@needs_setpriv
def test_a_missing_database_in_a_read_only_folder_gives_a_clear_message(tmp_path):
    folder = tmp_path / "srv"
    folder.mkdir()
    folder.chmod(0o555)  # nothing there yet: no database, no generated callback secret
    try:
        server = _start_failing(folder, restricted=True)
        _assert_clear(server, "Make the folder of DIALSTATUS_DB writable")
        shown = _page_run(folder / "dialstatus.duckdb", restricted=True, secret=False)
    finally:
        folder.chmod(0o755)
    assert shown["exceptions"] == []
    assert any("cannot write callback" in e for e in shown["errors"]), shown


# -- read-only, locked, not a database ----------------------------------------------------------


@needs_setpriv
def test_a_read_only_database_file_gives_a_clear_message(tmp_path):
    db = _make_db(tmp_path / "srv")
    db.chmod(0o444)
    server = _start_failing(tmp_path / "srv", restricted=True)
    message = _assert_clear(server, "cannot be opened for writing (permission denied)")
    assert "dialstatus.duckdb" in message and str(tmp_path) not in message  # no server paths
    shown = _page_run(db, restricted=True)
    assert shown["exceptions"] == []
    assert any("permission denied" in e for e in shown["errors"]), shown


@needs_setpriv
def test_a_read_only_folder_gives_a_clear_message(tmp_path):
    db = _make_db(tmp_path / "srv")
    folder = db.parent
    folder.chmod(0o555)
    try:
        server = _start_failing(folder, restricted=True)
        _assert_clear(server, "The folder of the database file dialstatus.duckdb is not writable")
        shown = _page_run(db, restricted=True)
    finally:
        folder.chmod(0o755)
    assert shown["exceptions"] == []
    assert any("is not writable" in e for e in shown["errors"]), shown


def test_a_database_held_by_another_process_gives_a_clear_message(tmp_path):
    db = _make_db(tmp_path / "srv")
    holder = subprocess.Popen(
        [sys.executable, "-c", f"import duckdb, time; c = duckdb.connect({str(db)!r}); "
         "print('held', flush=True); time.sleep(120)"],
        stdout=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        assert holder.stdout.readline().strip() == "held"
        server = _start_failing(tmp_path / "srv")
        message = _assert_clear(server, "Another process")
        assert f"(process {holder.pid})" in message and "only one dashboard server" in message
        shown = _page_run(db)
    finally:
        holder.kill()
        holder.wait()
    assert shown["exceptions"] == []
    assert any("Another process" in e for e in shown["errors"]), shown


def test_a_file_that_is_not_a_database_gives_a_clear_message(tmp_path):
    data_dir = tmp_path / "srv"
    data_dir.mkdir()
    (data_dir / "dialstatus.duckdb").write_text("id,name\n1,not a database\n" * 200)
    server = _start_failing(data_dir)
    _assert_clear(server, "is not a DuckDB database")
    assert (data_dir / "dialstatus.duckdb").read_text().startswith("id,name")  # untouched


# -- schema versions ----------------------------------------------------------------------------


def _v1_database(path: Path, with_meta: bool = True) -> None:
    """A database as version 1 of this program left it (MIGRATIONS[1] is kept verbatim), with
    rows in every table; without `meta` it is what a build before versioning would have made."""
    with duckdb.connect(str(path)) as con:
        con.execute("SET TimeZone = 'Asia/Kolkata'")
        con.execute(MIGRATIONS[1])
        if not with_meta:
            con.execute("DROP TABLE meta")
        else:
            con.execute("INSERT INTO meta VALUES ('schema_version', 1), ('data_version', 7)")
        con.execute(
            "INSERT INTO leads (campaign_name, lead_key, lead_id, phone_number, status, "
            "lead_status, dial_status, dial_bucket, disposition, attempts, created_at, "
            "updated_at, delivery_id) "
            "SELECT 'Old Campaign', 'L' || i, 'L' || i, '98' || lpad(i::VARCHAR, 8, '0'), "
            "CASE WHEN i % 3 = 0 THEN 'Success' ELSE 'Pending' END, "
            "CASE WHEN i % 3 = 0 THEN 'Success' ELSE 'Pending' END, "
            "CASE WHEN i % 2 = 0 THEN 'answered' ELSE 'not_answered' END, "
            "CASE WHEN i % 2 = 0 THEN 'answered' ELSE 'NoAnswer' END, "
            "CASE WHEN i % 3 = 0 THEN 'Interested' END, i % 4, "
            "TIMESTAMPTZ '2026-11-01 09:00:00+05:30' + INTERVAL (i) MINUTE, "
            "TIMESTAMPTZ '2026-11-10 09:00:00+05:30' + INTERVAL (i) MINUTE, 1 "
            "FROM range(500) t(i)"
        )
        con.execute("INSERT INTO campaigns (name, source) VALUES ('Old Campaign', 'config')")
        con.execute(
            "INSERT INTO sync_state VALUES ('Old Campaign', TIMESTAMPTZ '2026-11-10 17:19:00', "
            "TRUE, TIMESTAMPTZ '2026-11-10 18:00:00', NULL, NULL)"
        )
        con.execute("INSERT INTO disposition_categories VALUES ('Interested', 'Sale')")
        con.execute(
            "INSERT INTO raw_deliveries (id, sha256, size_bytes, path, state, rows) "
            "VALUES (nextval('delivery_ids'), 'abc', 10, '/x/1.body', 'ingested', 500)"
        )


def _content(con) -> dict:
    return {
        "leads": con.execute("SELECT * FROM leads ORDER BY lead_key").fetchall(),
        "campaigns": con.execute("SELECT name, source, enabled FROM campaigns").fetchall(),
        "sync_state": con.execute("SELECT * FROM sync_state").fetchall(),
        "categories": con.execute("SELECT * FROM disposition_categories").fetchall(),
        "raw": con.execute("SELECT id, sha256, state, rows FROM raw_deliveries").fetchall(),
    }


@pytest.mark.parametrize("with_meta", [True, False], ids=["v1", "v0-no-meta"])
def test_an_older_schema_is_migrated_with_its_data_intact(tmp_path, with_meta):
    path = tmp_path / "old.duckdb"
    _v1_database(path, with_meta=with_meta)
    with duckdb.connect(str(path), read_only=True) as con:
        con.execute("SET TimeZone = 'Asia/Kolkata'")
        before = _content(con)
    store = Store(path)
    try:
        with store.cursor() as cursor:
            cursor.execute("SET TimeZone = 'Asia/Kolkata'")
            after = _content(cursor)
            version = cursor.execute("SELECT value FROM meta WHERE key = 'schema_version'")
            assert version.fetchone() == (SCHEMA_VERSION,)
            tables = {
                r[0] for r in cursor.execute("SELECT table_name FROM duckdb_tables()").fetchall()
            }
        assert after == before
        assert store.data_version() == (7 if with_meta else 0)
        with store.cursor() as cursor:  # v9: no index on leads (ingest keeps the keys unique)
            assert not cursor.execute(
                "SELECT 1 FROM duckdb_constraints() WHERE table_name = 'leads' "
                "AND constraint_type IN ('PRIMARY KEY', 'UNIQUE')"
            ).fetchall()
        # Every later version's objects exist (whatever each migration adds).
        fresh = Store(tmp_path / "fresh.duckdb")
        with fresh.cursor() as cursor:
            expected = {
                r[0] for r in cursor.execute("SELECT table_name FROM duckdb_tables()").fetchall()
            }
        fresh.close()
        assert tables == expected
    finally:
        store.close()
    Store(path).close()  # opening a current file again changes nothing


def test_the_server_serves_a_migrated_older_database(tmp_path):
    data_dir = tmp_path / "srv"
    data_dir.mkdir()
    _v1_database(data_dir / "dialstatus.duckdb")
    env = {"DIALSTATUS_SYNC_ENABLED": "false", "DIALSTATUS_CAMPAIGNS": "Old Campaign"}
    with ServerProcess(data_dir, env=env) as server:
        old = next(c for c in server.health()["campaigns"] if c["name"] == "Old Campaign")
    assert old["rows"] == 500 and old["watermark"].startswith("2026-11-10T17:19:00")
    assert "Traceback" not in server.log_text()


def test_a_newer_schema_is_refused_and_left_untouched(tmp_path):
    data_dir = tmp_path / "srv"
    db = _make_db(data_dir)
    with duckdb.connect(str(db)) as con:
        con.execute("UPDATE meta SET value = 99 WHERE key = 'schema_version'")
    with pytest.raises(StoreError, match="schema version 99, newer than this program"):
        Store(db)
    server = _start_failing(data_dir)
    message = _assert_clear(server, "newer than this program")
    assert "Run that release (or newer)" in message
    shown = _page_run(db)
    assert shown["exceptions"] == []
    assert any("schema version 99" in e for e in shown["errors"]), shown
    with duckdb.connect(str(db), read_only=True) as con:
        assert con.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone() == (
            99,
        )


def test_a_failed_upgrade_is_rolled_back_with_a_clear_message(tmp_path, monkeypatch):
    path = tmp_path / "old.duckdb"
    _v1_database(path)
    with duckdb.connect(str(path), read_only=True) as con:
        before = _content(con)
    broken = SCHEMA_VERSION + 1
    monkeypatch.setattr(store_module, "SCHEMA_VERSION", broken)
    monkeypatch.setitem(
        MIGRATIONS, broken, "CREATE TABLE half_done (x INTEGER); SELECT * FROM no_such_table;"
    )
    with pytest.raises(StoreError, match="was rolled back; the file holds what it held before"):
        Store(path)
    with duckdb.connect(str(path), read_only=True) as con:
        version = con.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone()
        tables = {r[0] for r in con.execute("SELECT table_name FROM duckdb_tables()").fetchall()}
        assert _content(con) == before
    # The versions before the broken one did complete (one transaction per version).
    assert version == (broken - 1,) and "half_done" not in tables


def test_the_sandbox_settings_variable_is_checked(tmp_path):
    server = ServerProcess(tmp_path / "srv", env={"DIALSTATUS_SANDBOX_CONFIG": '{"fault": "x"}'})
    with pytest.raises(RuntimeError, match="DIALSTATUS_SANDBOX_CONFIG"):
        server.start(timeout=30)
    server.stop()
    assert stat.S_ISDIR((tmp_path / "srv").stat().st_mode)
