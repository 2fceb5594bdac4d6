"""Two roles: viewers see the dashboards, operators also change Settings, press Sync now and send
hand-made requests (capped per operator per hour). OIDC lets in only the listed accounts.

The dashboard runs under AppTest with an OIDC `[auth]` in its secrets file; `AppTest.user` is
what Streamlit's `st.user` reads after a provider signed someone in.
"""

import time
from datetime import timedelta

import httpx
import pytest
import streamlit as st
from streamlit.testing.v1 import AppTest

from lib.auth import hash_password
from lib.services import get_services, reset_services
from lib.store import catalog, policy
from tests.support.server import ServerProcess
from tests.test_pages import FakeEngine

OPERATOR = "boss@example.com"
SECOND_OPERATOR = "ops@partner.org"
VIEWER = "analyst@example.com"
SECRETS = f"""
[auth]
redirect_uri = "http://localhost:8501/oauth2callback"
cookie_secret = "{"c" * 32}"
client_id = "dashboard"
client_secret = "s"
server_metadata_url = "https://id.example/.well-known/openid-configuration"
allowed_domains = ["example.com"]
operator_emails = ["{OPERATOR}", "{SECOND_OPERATOR}"]
"""
OPERATOR_CONTROLS = {
    "settings": {
        "settings_add",
        "settings_remove",
        "settings_save_categories",
        "settings_save_policy",
        "settings_save_allowed",
    },
    "sync": {"sync_now", "FormSubmitter:manual_request-Send request"},
}


@pytest.fixture
def oidc(seeded, tmp_path, monkeypatch):
    secrets_file = tmp_path / "secrets.toml"
    secrets_file.write_text(SECRETS)
    monkeypatch.setenv("DIALSTATUS_SECRETS_FILE", str(secrets_file))
    monkeypatch.setenv("DIALSTATUS_MANUAL_REQUESTS_PER_HOUR", "2")
    reset_services()
    st.cache_data.clear()
    st.cache_resource.clear()  # the hourly allowance of hand-made requests
    services = get_services()
    services.sync = FakeEngine()
    yield services
    st.cache_resource.clear()


def _as(email: str | None, page: str = "settings", **claims) -> AppTest:
    at = AppTest.from_file("../dashboard.py", default_timeout=30)
    at.user = {"is_logged_in": email is not None, "email": email, **claims}
    at.run()
    if at.metric and page != "overview":  # signed in: the overview's tiles are drawn
        at.switch_page(f"app_pages/{page}.py").run()
    assert not at.exception, at.exception
    return at


def _keys(at: AppTest) -> set[str]:
    return {b.key for b in at.button if b.key}


@pytest.mark.parametrize("page", sorted(OPERATOR_CONTROLS))
def test_viewers_see_the_page_but_no_operator_control(oidc, page):
    viewer, operator = _as(VIEWER, page), _as(OPERATOR, page)
    assert OPERATOR_CONTROLS[page] <= _keys(operator)
    assert not OPERATOR_CONTROLS[page] & _keys(viewer)
    assert "only operators can" in " ".join(c.value for c in viewer.caption)
    assert viewer.dataframe  # the tables are still there to read


def test_only_listed_and_verified_accounts_get_in(oidc):
    signed_out = _as(None)
    assert [b.key for b in signed_out.button] == ["sign_in_oidc"] and not signed_out.metric
    for refused in (
        _as("intruder@evil.org"),
        _as("someone@example.com.evil.org"),
        _as("anyone@example.com", email_verified=False),  # an unverified claim proves nothing
    ):
        assert "may not open this dashboard" in refused.error[0].value
        assert [b.key for b in refused.button] == ["sign_out"] and not refused.metric
    admitted = _as(SECOND_OPERATOR, "overview")  # listed as an operator, outside the domain
    assert [m.label for m in admitted.metric][:1] == ["Leads"]


def test_a_hidden_operator_control_is_refused_in_its_own_code_path(oidc):
    """A widget event that reaches a session which is (now) a viewer's does nothing."""
    at = _as(OPERATOR)
    at.user = {"is_logged_in": True, "email": VIEWER}
    at.session_state["_dialstatus_role"] = "viewer"  # what the viewer's last run recorded
    at.text_input(key="settings_new_campaign").set_value("Sneaky")
    at.button(key="settings_add").click().run()
    assert "Only operators can change the campaigns" in " ".join(e.value for e in at.error)
    assert "Sneaky" not in catalog.list_campaigns(oidc.store)
    assert "settings_add" not in _keys(at)


def test_an_operator_sets_the_calling_window_and_a_bad_one_is_refused(oidc):
    at = _as(OPERATOR)
    at.number_input(key="settings_window_start").set_value(8)
    at.number_input(key="settings_window_end").set_value(20)
    at.number_input(key="settings_stale_days").set_value(5)
    at.button(key="settings_save_policy").click().run()
    assert "Saved the calling window" in " ".join(m.value for m in at.success)
    assert policy.dial_policy(oidc.store) == policy.DialPolicy(8, 20, 5)
    at.number_input(key="settings_window_start").set_value(21)
    at.button(key="settings_save_policy").click().run()
    assert "must start before it ends" in " ".join(e.value for e in at.error)
    assert policy.dial_policy(oidc.store) == policy.DialPolicy(8, 20, 5)
    viewer = _as(VIEWER)
    assert viewer.number_input(key="settings_window_start").disabled


def _send_manual(at: AppTest, today) -> AppTest:
    at.date_input(key="manual_from_day").set_value(today - timedelta(days=1))
    at.date_input(key="manual_to_day").set_value(today)
    return at.button(key="FormSubmitter:manual_request-Send request").click().run()


def test_hand_made_requests_are_capped_per_operator_per_hour(oidc, seeded):
    at = _as(OPERATOR, "sync")
    for _ in range(2):
        at = _send_manual(at, seeded.today)
        assert "Queued as request 42" in at.success[0].value
    at = _send_manual(at, seeded.today)
    assert "may send 2 hand-made requests an hour" in at.error[0].value
    assert len(oidc.sync.manual) == 2
    other = _send_manual(_as(SECOND_OPERATOR, "sync"), seeded.today)  # their own allowance
    assert "Queued as request 42" in other.success[0].value and len(oidc.sync.manual) == 3


# -- tokens over real HTTP ------------------------------------------------------------------------


@pytest.fixture(scope="module")
def demo_server(tmp_path_factory):
    """The real server in demo mode (no [auth]), with the tests' admin token."""
    with ServerProcess(tmp_path_factory.mktemp("tokens")) as server:
        yield server


def _sync(server: ServerProcess, token: str) -> httpx.Response:
    headers = {"X-Dialstatus-Token": token}
    return httpx.post(server.base_url + "/api/sync", headers=headers, timeout=10)


def test_wrong_tokens_on_api_sync_are_held_back_with_a_growing_delay(demo_server):
    right = demo_server.admin_headers["X-Dialstatus-Token"]
    free = [_sync(demo_server, f"guess-{n}") for n in range(3)]
    assert [r.status_code for r in free] == [401] * 3 and "Retry-After" not in free[-1].headers
    delayed = _sync(demo_server, "guess-3")
    assert delayed.status_code == 401 and delayed.headers["Retry-After"] == "1"
    held = _sync(demo_server, right)  # while held back even the right token waits
    assert held.status_code == 429 and held.headers["Retry-After"] == "1"
    time.sleep(1.1)
    assert _sync(demo_server, "guess-4").headers["Retry-After"] == "2"  # it grows
    time.sleep(2.1)
    assert _sync(demo_server, right).status_code == 202
    assert _sync(demo_server, "typo").status_code == 401  # a success starts over: free again
    assert "Retry-After" not in _sync(demo_server, "typo").headers
    assert _sync(demo_server, right).status_code == 202


def test_the_mounted_sandbox_admin_routes_need_the_admin_token(demo_server):
    url = demo_server.base_url + "/api/sandbox/_sandbox/requests"
    assert httpx.get(url, timeout=10).status_code == 401
    callback_secret = {"X-Dialstatus-Token": demo_server.callback_secret}
    assert httpx.get(url, headers=callback_secret, timeout=10).status_code == 403
    assert httpx.get(url, headers=demo_server.admin_headers, timeout=10).status_code == 200
    config = demo_server.base_url + "/api/sandbox/_sandbox/config"
    refused = httpx.post(config, json={"fault": "http_500", "fault_count": 0}, timeout=10)
    assert refused.status_code == 401
    assert httpx.get(config, headers=demo_server.admin_headers).json()["fault"] == "none"


def test_without_an_admin_token_the_demo_sandbox_admin_routes_stay_shut(tmp_path):
    with ServerProcess(tmp_path / "srv", env={"DIALSTATUS_ADMIN_TOKEN": ""}) as server:
        url = server.base_url + "/api/sandbox/_sandbox/config"
        for headers in ({}, {"X-Dialstatus-Token": ""}, {"X-Dialstatus-Token": "anything"}):
            answer = httpx.get(url, headers=headers, timeout=10)
            assert answer.status_code == 403 and "DIALSTATUS_ADMIN_TOKEN" in answer.text


def test_a_short_admin_token_stops_the_server_naming_the_setting(tmp_path):
    server = ServerProcess(tmp_path / "srv", env={"DIALSTATUS_ADMIN_TOKEN": "short-token"})
    with pytest.raises(RuntimeError) as stopped:
        server.start(timeout=60)
    server.stop()
    assert "DIALSTATUS_ADMIN_TOKEN" in str(stopped.value)
    assert "short-token" not in server.log_text()


def test_health_details_need_a_token_and_wrong_ones_are_held_back(tmp_path):
    env = {"DIALSTATUS_PASSWORD_HASH": hash_password("team"), "DIALSTATUS_SYNC_ENABLED": "false"}
    with ServerProcess(tmp_path / "srv", env=env) as server:
        url = server.base_url + "/api/health"
        assert httpx.get(url, timeout=10).json() == {"status": "ok", "mode": "demo"}
        for n in range(4):  # three are free, the fourth imposes a wait
            assert "campaigns" not in httpx.get(url, headers={"X-Dialstatus-Token": f"g{n}"}).json()
        held = httpx.get(url, headers=server.admin_headers, timeout=10)
        assert held.status_code == 429 and held.headers["Retry-After"] == "1"
        assert httpx.get(url, timeout=10).status_code == 200  # liveness never waits
        time.sleep(1.1)
        assert "campaigns" in httpx.get(url, headers=server.admin_headers, timeout=10).json()
