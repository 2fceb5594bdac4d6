"""Shared-password sign-in gates the whole dashboard; failures slow down only their own session."""

import time

import pytest
import streamlit as st
from streamlit.testing.v1 import AppTest

from lib.auth import hash_password
from lib.services import get_services, reset_services
from lib.view.access import SIGN_IN_BACKOFF

PASSWORD = "team-pass-42"
OPERATOR_PASSWORD = "operators-only-7"


@pytest.fixture
def password_protected(seeded, monkeypatch):
    monkeypatch.setenv("DIALSTATUS_PASSWORD_HASH", hash_password(PASSWORD))
    monkeypatch.setenv("DIALSTATUS_OPERATOR_PASSWORD_HASH", hash_password(OPERATOR_PASSWORD))
    reset_services()
    st.cache_data.clear()
    return get_services()


def _open(params: dict | None = None) -> AppTest:
    at = AppTest.from_file("../dashboard.py", default_timeout=30)
    for key, value in (params or {}).items():
        at.query_params[key] = value
    return at.run()


def _sign_in(at: AppTest, password: str) -> AppTest:
    at.text_input(key="sign_in_password").input(password)
    return at.button[0].click().run()


def _errors(at: AppTest) -> str:
    return " ".join(e.value for e in at.error)


def test_nothing_is_shown_before_sign_in(password_protected):
    at = _open()
    assert not at.exception
    assert len(at.metric) == 0 and len(at.sidebar.multiselect) == 0
    assert at.text_input(key="sign_in_password") is not None


def test_wrong_password_is_refused_and_right_one_opens_the_shared_view(password_protected):
    campaign = password_protected.settings.campaigns[0]
    at = _open({"campaign": campaign, "dialstatus": "answered"})
    at = _sign_in(at, "guess")
    assert "not right" in _errors(at) and len(at.metric) == 0
    at = _sign_in(at, PASSWORD)
    assert not at.exception
    assert [m.label for m in at.metric][:1] == ["Leads"]
    assert at.multiselect(key="campaign").value == [campaign]
    assert at.multiselect(key="dialstatus").value == ["answered"]


def test_failures_slow_down_only_their_own_session_with_a_growing_delay(password_protected):
    free, first = SIGN_IN_BACKOFF["free"], SIGN_IN_BACKOFF["first_s"]
    guesser = _open()
    for _ in range(free):
        guesser = _sign_in(guesser, "wrong")
        assert "Wait" not in _errors(guesser)  # a typo or two cost nothing
    guesser = _sign_in(guesser, "wrong")
    assert f"Wait {first:g} s" in _errors(guesser)
    guesser = _sign_in(guesser, PASSWORD)  # during the delay even the right one waits
    assert "before the next try" in _errors(guesser) and len(guesser.metric) == 0

    colleague = _sign_in(_open(), PASSWORD)  # another browser behind the same proxy
    assert not colleague.error and [m.label for m in colleague.metric][:1] == ["Leads"]

    time.sleep(first + 0.2)
    guesser = _sign_in(guesser, "wrong again")
    assert f"Wait {2 * first:g} s" in _errors(guesser)  # it grows
    time.sleep(2 * first + 0.2)
    guesser = _sign_in(guesser, PASSWORD)
    assert not guesser.error and [m.label for m in guesser.metric][:1] == ["Leads"]


def test_the_operator_password_opens_the_operator_role(password_protected):
    viewer = _sign_in(_open(), PASSWORD).switch_page("app_pages/settings.py").run()
    operator = _sign_in(_open(), OPERATOR_PASSWORD).switch_page("app_pages/settings.py").run()
    assert not viewer.exception and not operator.exception
    assert [b.key for b in operator.button if b.key == "settings_add"] == ["settings_add"]
    assert not [b.key for b in viewer.button if b.key == "settings_add"]
