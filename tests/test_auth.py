"""Shared-password hashing, the `[auth]` modes (failing closed), roles and the growing delays."""

import pytest

from lib.auth import (
    OPERATOR,
    VIEWER,
    Backoff,
    BackoffByClient,
    HourlyQuota,
    auth_config,
    hash_password,
    verify_password,
)

OIDC = {
    "redirect_uri": "http://localhost:8501/oauth2callback",
    "cookie_secret": "y" * 32,
    "client_id": "c",
    "client_secret": "s",
    "server_metadata_url": "https://id.example/.well-known/openid-configuration",
}


def test_password_hash_verifies_only_the_right_password_and_never_holds_it():
    stored = hash_password("correct horse")
    assert "correct horse" not in stored
    assert verify_password("correct horse", stored)
    assert not verify_password("correct horsE", stored)
    assert not verify_password("", stored)
    assert hash_password("correct horse") != stored  # salted


@pytest.mark.parametrize("broken", ["", "scrypt$", "md5$a$b", "scrypt$!!$??", "x"])
def test_malformed_stored_hash_never_verifies(broken):
    assert not verify_password("anything", broken)


def test_modes():
    assert auth_config(None, env={}).mode == "none"
    assert auth_config({"password_hash": hash_password("p")}, env={}).mode == "password"
    assert auth_config(None, env={"DIALSTATUS_PASSWORD_HASH": hash_password("p")}).mode == (
        "password"
    )
    named = {"redirect_uri": "x", "cookie_secret": "y", "google": {"client_id": "c"}}
    oidc = auth_config({**named, "allowed_domains": ["example.com"]}, env={})
    assert oidc.mode == "oidc" and oidc.providers == ("google",)
    assert auth_config({**OIDC, "allowed_emails": "a@x.org"}, env={}).providers == ()


@pytest.mark.parametrize(
    ("table", "named"),
    [
        ({}, "no keys"),  # an empty [auth] is not "sign-in off"
        ({"pasword_hash": "scrypt$a$b"}, "pasword_hash"),  # a typo never turns sign-in off
        ({"operator_password_hash": hash_password("o")}, "operator_password_hash"),
        ({"password_hash": hash_password("p"), "allowed_emails": ["a@x.org"]}, "allowed_emails"),
        ({"password_hash": "hunter2"}, "password_hash"),
        (OIDC, "allowed_emails or allowed_domains"),  # any account would get in
        ({**OIDC, "allowed_domain": ["x.org"]}, "allowed_domain"),
        ({**OIDC, "allowed_emails": ["x.org"]}, "allowed_emails"),  # a domain in the wrong list
        ({**OIDC, "allowed_domains": ["@x.org"]}, "allowed_domains"),
        ({**OIDC, "allowed_domains": " , "}, "allowed_domains"),
        ({**OIDC, "allowed_domains": ["x.org"], "password_hash": hash_password("p")}, "both"),
        ({**OIDC, "google": {"client_id": "c", "allowed_emails": ["a@x.org"]}}, "google.allowed"),
        ({**OIDC, "allowed_domains": ["x.org"], "extra": {"foo": 1}}, "extra.foo"),
    ],
)
def test_a_bad_auth_table_fails_closed_naming_the_key(table, named):
    with pytest.raises(ValueError, match=named):
        auth_config(table, env={})


def test_oidc_lets_in_only_listed_accounts_and_domains_and_names_operators():
    auth = auth_config(
        {
            **OIDC,
            "allowed_emails": ["Guest@Partner.org"],
            "allowed_domains": ["example.com"],
            "operator_emails": ["boss@example.com", "ops@elsewhere.net"],
        },
        env={},
    )
    assert auth.email_allowed("guest@partner.org") and auth.email_allowed(" ANY@example.com ")
    assert auth.email_allowed("ops@elsewhere.net")  # an operator is let in too
    for refused in ("other@partner.org", "x@example.com.evil.org", "x@sub.example.com", "", None):
        assert not auth.email_allowed(refused), refused
    assert auth.role_for_email("Boss@Example.com") == OPERATOR
    assert auth.role_for_email("any@example.com") == VIEWER


def test_each_shared_password_opens_its_role():
    auth = auth_config(
        {"password_hash": hash_password("view"), "operator_password_hash": hash_password("op")},
        env={},
    )
    assert auth.role_for_password("view") == VIEWER
    assert auth.role_for_password("op") == OPERATOR
    assert auth.role_for_password("guess") is None
    assert (
        auth_config({"password_hash": hash_password("v")}, env={}).role_for_password("op") is None
    )


def test_backoff_is_free_at_first_then_doubles_up_to_its_cap_and_a_success_starts_over():
    now = [0.0]
    backoff = Backoff(free=2, first_s=1.0, cap_s=5.0, clock=lambda: now[0])
    assert [backoff.failed() for _ in range(6)] == [0, 0, 1, 2, 4, 5]
    assert backoff.wait_left() == 5
    now[0] = 5.0
    assert backoff.wait_left() == 0
    backoff.succeeded()
    assert backoff.failed() == 0


def test_backoff_by_client_keeps_clients_apart_and_remembers_a_bounded_number():
    now = [0.0]
    clients = BackoffByClient(max_clients=2, first_s=1.0, clock=lambda: now[0])
    assert clients.failed("a") == 1 and clients.wait_left("a") == 1
    assert clients.wait_left("b") == 0
    clients.failed("b")
    clients.failed("c")  # "a" is forgotten first
    assert clients.wait_left("a") == 0 and clients.wait_left("c") == 1
    clients.succeeded("c")
    assert clients.wait_left("c") == 0


def test_hourly_quota_counts_per_key_and_frees_a_use_an_hour_after_it():
    now = [0.0]
    quota = HourlyQuota(2, clock=lambda: now[0])
    assert quota.take("a") == 0
    now[0] = 100.0
    assert quota.take("a") == 0
    assert quota.take("a") == pytest.approx(3500)  # the first use leaves the hour at 3600
    assert quota.take("b") == 0
    now[0] = 3600.5
    assert quota.take("a") == 0
    assert quota.take("a") == pytest.approx(99.5)
