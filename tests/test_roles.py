"""Two roles: viewers see the dashboards, operators also change Settings, press Sync now and send
hand-made requests (capped per operator per hour). OIDC lets in only the listed accounts.

The dashboard runs under AppTest with an OIDC `[auth]` in its secrets file; `AppTest.user` is
what Streamlit's `st.user` reads after a provider signed someone in.
"""

from datetime import timedelta

import pytest
import streamlit as st
from streamlit.testing.v1 import AppTest

from lib.services import get_services, reset_services
from lib.store import catalog
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
    "settings": {"settings_add", "settings_remove", "settings_save_categories"},
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
