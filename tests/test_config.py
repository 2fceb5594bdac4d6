"""Settings: environment beats secrets.toml, bad values name the setting, secrets stay private."""

import os
import stat

import pytest

from lib.config import DEMO_CAMPAIGNS, ConfigError, load_settings, mask_secrets


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


def test_a_short_admin_token_is_refused_naming_the_setting_never_the_value(tmp_path):
    with pytest.raises(ConfigError, match="DIALSTATUS_ADMIN_TOKEN") as refused:
        _load(tmp_path, {"DIALSTATUS_ADMIN_TOKEN": "tooshort-123"})
    assert "tooshort-123" not in str(refused.value)
    with pytest.raises(ConfigError, match="admin_token"):
        _load(tmp_path, toml='[dialstatus]\nadmin_token = "abc"\n')
    assert _load(tmp_path, {"DIALSTATUS_ADMIN_TOKEN": "x" * 16}).admin_token == "x" * 16


def test_a_short_callback_secret_stops_the_server_whether_configured_or_stored(tmp_path):
    with pytest.raises(ConfigError, match="callback_secret") as refused:
        _load(tmp_path, {"DIALSTATUS_CALLBACK_SECRET": "short-secret"})
    assert "short-secret" not in str(refused.value)
    stored = tmp_path / "db" / "callback_secret"
    stored.parent.mkdir(parents=True)
    stored.write_text("short-stored\n")
    with pytest.raises(ConfigError, match="callback secret under 16") as refused:
        _load(tmp_path)
    assert "short-stored" not in str(refused.value)


# Run in a child process: it dies (SIGKILL) right after it creates a file in the data folder
# and before it writes a byte, which is where a crash or power cut leaves an empty file.
_DIE_AFTER_CREATING = """
import os, signal, sys
from lib.config import load_settings

folder = sys.argv[1]
dying = []
def die_once_created(event, args):
    if event == "open" and not dying and str(args[0]).startswith(folder):
        if isinstance(args[2], int) and args[2] & os.O_CREAT:
            dying.append(args[0])
            os.close(os.open(args[0], args[2], 0o600))  # the file exists, still empty
            os.kill(os.getpid(), signal.SIGKILL)
sys.addaudithook(die_once_created)
load_settings(env={"DIALSTATUS_DB": folder + "/d.duckdb"}, secrets_path=None)
"""


def test_a_crash_while_the_callback_secret_is_made_never_leaves_a_broken_one(tmp_path):
    import signal
    import subprocess
    import sys

    from tests.support.server import PROJECT_ROOT

    folder = tmp_path / "db"
    folder.mkdir()
    child = subprocess.run(
        [sys.executable, "-c", _DIE_AFTER_CREATING, str(folder)],
        cwd=PROJECT_ROOT,
        env={"PATH": os.environ.get("PATH", ""), "DIALSTATUS_SECRETS_FILE": "/nonexistent"},
        capture_output=True,
        timeout=60,
    )
    assert child.returncode == -signal.SIGKILL, child.stderr.decode()
    settings = _load(tmp_path)  # the next start works and makes a whole secret
    assert len(settings.callback_secret) >= 32
    assert (folder / "callback_secret").read_text() == settings.callback_secret


def test_every_secret_of_the_settings_is_masked_in_text_from_elsewhere(tmp_path):
    settings = _load(
        tmp_path,
        env={
            "CLOUDAGENT_API_KEY": "KK-api-key-0123456789",
            "CLOUDAGENT_USERNAME": "manager",
            "DIALSTATUS_ADMIN_TOKEN": "admin-token-0123456789",
        },
    )
    said = (
        f"rejected apiKey KK-api-key-0123456789 for {settings.callback_secret}; "
        "token admin-token-0123456789"
    )
    masked = mask_secrets(said, settings.secret_values)
    assert masked == "rejected apiKey *** for ***; token ***"
    assert mask_secrets("nothing secret", (None, "")) == "nothing secret"
