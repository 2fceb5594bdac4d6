"""Shared-password hashing, mode detection and the sign-in attempt limiter."""

import pytest

from lib.auth import AttemptLimiter, auth_config, hash_password, verify_password


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


def test_mode_detection():
    assert auth_config({}, env={}).mode == "none"
    assert auth_config({"password_hash": hash_password("p")}, env={}).mode == "password"
    oidc = {"redirect_uri": "x", "cookie_secret": "y", "google": {"client_id": "c"}}
    assert auth_config(oidc, env={}).mode == "oidc"
    with pytest.raises(ValueError, match="password_hash"):
        auth_config({"password_hash": "hunter2"}, env={})


def test_attempt_limiter_blocks_after_five_failures_until_the_window_passes():
    now = [0.0]
    limiter = AttemptLimiter(max_failures=5, window_s=60, clock=lambda: now[0])
    for _ in range(5):
        assert limiter.retry_after("1.2.3.4") == 0
        limiter.record_failure("1.2.3.4")
    assert limiter.retry_after("1.2.3.4") == pytest.approx(60)
    assert limiter.retry_after("5.6.7.8") == 0  # other clients unaffected
    now[0] = 61
    assert limiter.retry_after("1.2.3.4") == 0
