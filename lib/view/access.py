"""Who may do what in this browser session: sign-in (OIDC or a shared password, with a growing
delay after failures in the session), the session's role, and the operator-only guards and the
hourly allowance of hand-made requests the pages use."""

from __future__ import annotations

import math

import streamlit as st

from lib.auth import OPERATOR, VIEWER, AuthConfig, Backoff, HourlyQuota, Role
from lib.view.ui import md_escape

ROLE_KEY = "_dialstatus_role"  # the session's role, set by require_viewer on every run
_SIGNED_IN = "_dialstatus_signed_in"  # the role a shared password opened in this session
_SIGN_IN_FAILURES = "_dialstatus_sign_in_failures"
# Per browser session, never per address: behind a proxy every viewer has the same one.
SIGN_IN_BACKOFF = {"free": 2, "first_s": 1.0, "cap_s": 60.0}


def _title() -> None:
    st.title("Campaign dial status")


def require_viewer(auth: AuthConfig) -> Role:
    """Stops the script until the viewer has signed in, when `[auth]` asks for it; returns the
    session's role (also kept for `is_operator`). With no `[auth]` everyone is an operator.

    OIDC uses Streamlit's own `st.login` and lets in only the listed accounts and domains; the
    shared-password mode checks the scrypt hashes in constant time, and each failure in this
    browser session makes the next try wait longer. The link's query parameters stay in the
    address bar, so a shared link opens its view after sign-in.
    """
    st.session_state[ROLE_KEY] = VIEWER  # fail closed until a mode below says otherwise
    if auth.mode == "none":
        role: Role = OPERATOR
    elif auth.mode == "oidc":
        role = _oidc_role(auth)
    else:
        role = st.session_state.get(_SIGNED_IN) or _password_sign_in(auth)
    st.session_state[ROLE_KEY] = role
    return role


def signed_in(auth: AuthConfig) -> bool:
    """Whether this session is past sign-in (the page menu is shown only then)."""
    if auth.mode == "none":
        return True
    if auth.mode == "oidc":
        return bool(st.user.get("is_logged_in")) and auth.email_allowed(st.user.get("email"))
    return bool(st.session_state.get(_SIGNED_IN))


def _oidc_role(auth: AuthConfig) -> Role:
    if not st.user.get("is_logged_in"):
        _title()
        st.write("Sign in to see the dashboard.")
        for provider in auth.providers or (None,):
            label = f"Sign in with {provider}" if provider else "Sign in"
            st.button(label, key=f"sign_in_{provider or 'oidc'}", on_click=st.login,
                      args=(provider,) if provider else (), type="primary")  # fmt: skip
        st.stop()
    email = st.user.get("email")
    # A provider that says the address is unverified may let anyone claim it.
    if st.user.get("email_verified") is False or not auth.email_allowed(email):
        _title()
        st.error(
            f"The account {md_escape(email or 'without an email address')} may not open this "
            "dashboard. Ask its administrator to add it, or sign in with another account.",
            icon=":material/block:",
        )
        st.button("Sign out", key="sign_out", on_click=st.logout)
        st.stop()
    return auth.role_for_email(email)


def _password_sign_in(auth: AuthConfig) -> Role:
    """The shared-password form; returns only once a password opened a role."""
    _title()
    with st.form("sign_in"):
        password = st.text_input("Team password", type="password", key="sign_in_password")
        submitted = st.form_submit_button("Sign in", type="primary")
    if submitted:
        failures = st.session_state.setdefault(_SIGN_IN_FAILURES, Backoff(**SIGN_IN_BACKOFF))
        wait = failures.wait_left()
        if wait > 0:
            st.error(f"Wait {math.ceil(wait)} s before the next try.", icon=":material/timer:")
            st.stop()
        role = auth.role_for_password(password)
        if role is None:
            delay = failures.failed()
            later = f" Wait {math.ceil(delay)} s before the next try." if delay else ""
            st.error("That password is not right." + later)
            st.stop()
        failures.succeeded()
        st.session_state[_SIGNED_IN] = role
        st.rerun()
    st.stop()


def is_operator() -> bool:
    """Whether this session may change Settings, press Sync now and send hand-made requests."""
    return st.session_state.get(ROLE_KEY) == OPERATOR


def operator_only(action: str) -> bool:
    """Call first in each operator action's own code path (a callback, a submit branch): True
    for an operator; otherwise shows why `action` is refused and returns False, so a control
    that is hidden cannot be triggered either."""
    if is_operator():
        return True
    st.error(f"Only operators can {action}.", icon=":material/lock:")
    return False


def operator_notice(what: str) -> None:
    """What a viewer sees in place of the operator controls."""
    st.caption(f"Signed in as a viewer: only operators can {what}.")


@st.cache_resource(show_spinner=False)
def _manual_request_quota(limit: int) -> HourlyQuota:
    return HourlyQuota(limit)  # process-wide, like the API's own rate limit


def manual_request_allowed(limit: int) -> bool:
    """Counts one hand-made request of this operator and returns True, or says when their
    hourly allowance has room again and returns False. Operators signed in by email each have
    their own allowance; with a shared password (or no sign-in) they share one."""
    email = st.user.get("email") if st.user.get("is_logged_in") else None
    wait = _manual_request_quota(limit).take(str(email or "shared").lower())
    if wait > 0:
        st.error(
            f"Not sent: an operator may send {limit} hand-made requests an hour. The next one "
            f"can go in {math.ceil(wait / 60)} min.",
            icon=":material/hourglass_top:",
        )
    return wait == 0


def signed_in_as() -> str:
    """Who made a change, as settings record it: the account's address with OIDC, else the
    role (the shared password and no sign-in name nobody)."""
    email = st.user.get("email") if st.user.get("is_logged_in") else None
    return str(email) if email else str(st.session_state.get(ROLE_KEY) or "unknown")
