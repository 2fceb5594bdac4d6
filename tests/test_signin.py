"""Viewer sign-in gates the whole dashboard when a shared password is configured."""

import pytest
import streamlit as st
from streamlit.testing.v1 import AppTest

from lib.auth import hash_password
from lib.services import get_services, reset_services
from lib.view.ui import _sign_in_attempts

PASSWORD = "team-pass-42"


@pytest.fixture
def password_protected(seeded, monkeypatch):
    monkeypatch.setenv("DIALSTATUS_PASSWORD_HASH", hash_password(PASSWORD))
    reset_services()
    st.cache_data.clear()
    _sign_in_attempts._failures.clear()
    yield get_services()
    _sign_in_attempts._failures.clear()


def _open(params: dict | None = None) -> AppTest:
    at = AppTest.from_file("../dashboard.py", default_timeout=30)
    for key, value in (params or {}).items():
        at.query_params[key] = value
    return at.run()


def _sign_in(at: AppTest, password: str) -> AppTest:
    at.text_input(key="sign_in_password").input(password)
    return at.button[0].click().run()


def test_nothing_is_shown_before_sign_in(password_protected):
    at = _open()
    assert not at.exception
    assert len(at.metric) == 0 and len(at.sidebar.multiselect) == 0
    assert at.text_input(key="sign_in_password") is not None


def test_wrong_password_is_refused_and_right_one_opens_the_shared_view(password_protected):
    campaign = password_protected.settings.campaigns[0]
    at = _open({"campaign": campaign, "dialstatus": "answered"})
    at = _sign_in(at, "guess")
    assert "not right" in at.error[0].value and len(at.metric) == 0
    at = _sign_in(at, PASSWORD)
    assert not at.exception
    assert [m.label for m in at.metric][:1] == ["Leads"]
    assert at.multiselect(key="campaign").value == [campaign]
    assert at.multiselect(key="dialstatus").value == ["answered"]


def test_repeated_failures_lock_out_even_the_right_password(password_protected):
    at = _open()
    for _ in range(5):
        at = _sign_in(at, "wrong")
    at = _sign_in(at, PASSWORD)
    assert "Too many failed attempts" in at.error[0].value
    assert len(at.metric) == 0
