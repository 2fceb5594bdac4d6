"""Settings: environment beats secrets.toml, bad values name the setting, secrets stay private."""

import os
import stat

import pytest

from lib.config import DEMO_CAMPAIGNS, ConfigError, load_settings


def _load(tmp_path, env=None, toml=""):
    secrets_file = tmp_path / "secrets.toml"
    secrets_file.write_text(toml)
    base = {"DIALSTATUS_DB": str(tmp_path / "db" / "d.duckdb")}
    return load_settings(env={**base, **(env or {})}, secrets_path=secrets_file)


def test_no_configuration_means_demo_mode_with_demo_campaigns(tmp_path):
    settings = _load(tmp_path)
    assert settings.demo and settings.campaigns == DEMO_CAMPAIGNS
    assert settings.timezone == "Asia/Kolkata"


def test_environment_wins_over_secrets_toml(tmp_path):
    toml = (
        '[cloudagent]\napi_key = "from-file"\nusername = "file_user"\n'
        '[dialstatus]\ncampaigns = ["A", "B"]\n'
    )
    settings = _load(
        tmp_path, {"CLOUDAGENT_USERNAME": "env_user", "DIALSTATUS_CAMPAIGNS": "X, Y,X"}, toml
    )
    assert not settings.demo
    assert settings.cloudagent.username == "env_user"
    assert settings.cloudagent.api_key == "from-file"
    assert settings.campaigns == ("X", "Y")


@pytest.mark.parametrize(
    ("env", "named"),
    [
        ({"DIALSTATUS_TIMEZONE": "Mars/Olympus"}, "DIALSTATUS_TIMEZONE"),
        ({"DIALSTATUS_SYNC_INTERVAL": "soon"}, "DIALSTATUS_SYNC_INTERVAL"),
        ({"DIALSTATUS_SYNC_INTERVAL": "1"}, "DIALSTATUS_SYNC_INTERVAL"),
        ({"DIALSTATUS_PUBLIC_URL": "ftp://x"}, "DIALSTATUS_PUBLIC_URL"),
        ({"DIALSTATUS_SHOW_PHONES": "maybe"}, "DIALSTATUS_SHOW_PHONES"),
        ({"CLOUDAGENT_API_KEY": "k"}, "CLOUDAGENT_USERNAME"),
        ({"CLOUDAGENT_API_KEY": "k", "CLOUDAGENT_USERNAME": "u", "CLOUDAGENT_API_URL": "x"},
         "CLOUDAGENT_API_URL"),
        ({"DIALSTATUS_PASSWORD_HASH": "plaintext"}, "password_hash"),
    ],
)  # fmt: skip
def test_bad_values_raise_a_clear_error_naming_the_setting(tmp_path, env, named):
    with pytest.raises(ConfigError, match=named):
        _load(tmp_path, env)


def test_bad_toml_is_a_config_error(tmp_path):
    with pytest.raises(ConfigError, match="not valid TOML"):
        _load(tmp_path, toml="[cloudagent\n")


def test_callback_secret_is_made_once_readable_by_owner_only(tmp_path):
    first = _load(tmp_path)
    second = _load(tmp_path)
    assert first.callback_secret == second.callback_secret and len(first.callback_secret) >= 32
    secret_file = tmp_path / "db" / "callback_secret"
    assert stat.S_IMODE(os.stat(secret_file).st_mode) == 0o600


def test_secrets_never_appear_in_repr(tmp_path):
    toml = '[cloudagent]\napi_key = "SUPERSECRETKEY123"\nusername = "u"\n'
    settings = _load(tmp_path, toml=toml)
    text = repr(settings) + str(settings) + repr(settings.cloudagent)
    assert "SUPERSECRETKEY123" not in text
    assert settings.callback_secret not in text
