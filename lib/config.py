"""Settings from environment variables and `.streamlit/secrets.toml` (the environment wins).

Read with `tomllib` rather than `st.secrets` so the server's lifespan, the sync engine and tests
can load settings without a Streamlit script run.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import tempfile
import tomllib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from lib.auth import AuthConfig, auth_config
from lib.fields import FieldMappingError, check_field_mapping

PROJECT_ROOT = Path(__file__).resolve().parent.parent
DEFAULT_SECRETS_PATH = PROJECT_ROOT / ".streamlit" / "secrets.toml"

# Inferred from the docs page slug (cloudagent-api.md, marked I): configurable for that reason.
DEFAULT_API_HOST = "https://in1-ccaas-api.ozonetel.com"
API_PATH = "/endpoint/dailer/data/preview/download"
DEFAULT_API_URL = DEFAULT_API_HOST + API_PATH

SANDBOX_PREFIX = "/api/sandbox"
DEMO_USERNAME = "demo_manager"
DEFAULT_TIMEZONE = "Asia/Kolkata"  # CloudAgent's India accounts; DIALSTATUS_TIMEZONE overrides it
DEMO_CAMPAIGNS = ("Renewals_Q4", "Loan Offers - Mumbai", "Credit Card Upsell", "Feedback Survey")


class ConfigError(ValueError):
    """A configuration value is missing or malformed; the message names the setting."""


SECRET_MASK = "***"  # noqa: S105 - the mask, not a secret


def mask_secrets(text: str, secrets: Iterable[str | None]) -> str:
    """`text` with every one of `secrets` in it replaced by SECRET_MASK (text that came from
    elsewhere, a sender's error say, before it is stored, logged or shown)."""
    for secret in secrets:
        if secret:
            text = text.replace(secret, SECRET_MASK)
    return text


def redact_callback_url(url: str) -> str:
    """scheme://host[:port]/path with the last path segment (the callback secret) as ***.

    Here, beside the secret's setting, so the client and the sandbox (which never imports the
    client) hide it the same way in their logs.
    """
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:
        return "<unparseable>"
    if not parts.scheme or not parts.hostname:
        return "<not a URL>" if url else ""
    host = parts.hostname + (f":{port}" if port else "")
    path = parts.path
    if path.strip("/"):
        path = path.rstrip("/").rpartition("/")[0] + "/***"
    return urlunsplit((parts.scheme, host, path, "", ""))


# How a request travels (inferred today, cloudagent-api.md): the body encoding and where the
# apiKey goes. `token` is CloudAgent's TOKEN_AUTH: a bearer token from TOKEN_PATH on the API host.
REQUEST_ENCODINGS = ("json", "form", "query")
AUTH_STYLES = ("apikey", "basic", "token")
TOKEN_PATH = "/ca_apis/CAToken/generateToken"  # noqa: S105 (a URL path, not a secret)
DATE_ORDERS = ("DMY", "MDY")  # how an ambiguous delivered date (no day over 12) is read
# How numbers read on screen (lib/view/numbers.py): lakh/crore grouping or thousands/millions.
NUMBER_FORMATS = ("indian", "international")
INDIAN_ZONES = ("Asia/Kolkata", "Asia/Calcutta")  # the zones whose default is `indian`


def default_number_format(timezone: str) -> str:
    """`indian` for an account in India's zone, else `international`."""
    return "indian" if timezone in INDIAN_ZONES else "international"


@dataclass(frozen=True)
class CloudAgentConfig:
    api_url: str
    username: str
    api_key: str = field(repr=False)
    request_encoding: str = "json"
    auth_style: str = "apikey"


@dataclass(frozen=True)
class Settings:
    cloudagent: CloudAgentConfig
    public_url: str | None  # None: derived from the server's own address at startup
    campaigns: tuple[str, ...]
    db_path: Path
    timezone: str
    sync_interval_s: float
    callback_timeout_s: float
    show_phones: bool
    max_body_bytes: int
    manual_requests_per_hour: int  # hand-made requests one operator may send in any hour
    callback_secret: str = field(repr=False)
    admin_token: str | None = field(default=None, repr=False)
    demo: bool = False
    sync_enabled: bool = True  # off: serve the stored data only (maintenance, benchmarks)
    keep_deliveries_days: float = 30  # raw bodies are deleted this long after ingest
    keep_events_days: float = 400  # the lead history keeps this many days
    min_free_mb: float = 1024  # below this much free disk, the callback refuses deliveries
    auth: AuthConfig = field(default=AuthConfig("none"), repr=False)
    # `[fields]` of secrets.toml: delivered field name -> dashboard column (lib/fields.py).
    fields: Mapping[str, str] = field(default_factory=dict)
    date_order: str = "DMY"  # `[dialstatus] date_order`: how ambiguous delivered dates are read
    number_format: str = "indian"  # `[dialstatus] number_format`: indian or international

    @property
    def data_dir(self) -> Path:
        return self.db_path.parent

    @property
    def deliveries_dir(self) -> Path:
        """Raw delivery bodies, kept as files beside the database until ingested."""
        return self.db_path.parent / (self.db_path.stem + ".deliveries")

    @property
    def zone(self) -> ZoneInfo:
        return ZoneInfo(self.timezone)

    @property
    def secret_values(self) -> tuple[str | None, ...]:
        """What must never be stored, logged or shown: for `mask_secrets`."""
        return (self.callback_secret, self.cloudagent.api_key, self.admin_token)


def _read_secrets(path: Path) -> dict:
    if not path.exists():
        return {}
    try:
        return tomllib.loads(path.read_text(encoding="utf-8"))
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{path.name} is not valid TOML: {exc}") from None


def _pick(env: Mapping[str, str], table: Mapping, env_name: str, key: str, default=None):
    value = env.get(env_name)
    if value is not None and value.strip() != "":
        return value.strip()
    value = table.get(key)
    return default if value is None or value == "" else value


def _number(value, name: str, minimum: float, unit: str = "seconds") -> float:
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise ConfigError(f"{name} must be a number of {unit}, got {value!r}") from None
    if number < minimum:
        raise ConfigError(f"{name} must be at least {minimum:g}, got {number:g}")
    return number


def _flag(value, name: str) -> bool:
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text in ("1", "true", "yes", "on"):
        return True
    if text in ("0", "false", "no", "off", ""):
        return False
    raise ConfigError(f"{name} must be true or false, got {value!r}")


def _choice(value, name: str, choices: tuple[str, ...]) -> str:
    text = str(value).strip()
    for choice in choices:
        if text.lower() == choice.lower():
            return choice
    raise ConfigError(f"{name} must be one of {', '.join(choices)}, got {text[:40]!r}")


def _field_mapping(table) -> dict[str, str]:
    """`[fields]`: "Customer Number" = "phone_number"; checked like the Settings page's edits."""
    if not isinstance(table, Mapping):
        raise ConfigError("[fields] in secrets.toml must be a table of field = column")
    mapping = {str(name).strip(): str(target).strip() for name, target in table.items()}
    try:
        check_field_mapping(mapping, "[fields] in secrets.toml")
    except FieldMappingError as exc:
        raise ConfigError(str(exc)) from None
    return mapping


def _campaign_list(value) -> tuple[str, ...]:
    items = value if isinstance(value, list) else str(value).split(",")
    names = [str(item).strip() for item in items]
    return tuple(dict.fromkeys(name for name in names if name))


MIN_SECRET_CHARS = 16  # the callback secret and the admin token: no shorter, or guessable


def _callback_secret(table: Mapping, env: Mapping[str, str], data_dir: Path) -> str:
    """The secret path segment of callBackUrl: from secrets.toml, else a 0600 file made once."""
    configured = _pick(env, table, "DIALSTATUS_CALLBACK_SECRET", "callback_secret")
    if configured:
        if len(str(configured)) < MIN_SECRET_CHARS:
            raise ConfigError(f"callback_secret must be at least {MIN_SECRET_CHARS} characters")
        return str(configured)
    secret_file = data_dir / "callback_secret"
    if secret_file.exists():
        stored = secret_file.read_text(encoding="utf-8").strip()
        if len(stored) < MIN_SECRET_CHARS:
            raise ConfigError(
                f"{secret_file} holds a callback secret under {MIN_SECRET_CHARS} characters: "
                "delete the file to have a new one made, or set callback_secret"
            )
        return stored
    data_dir.mkdir(parents=True, exist_ok=True)
    value = secrets.token_urlsafe(32)
    _write_atomically(secret_file, value)
    return value


def _write_atomically(path: Path, text: str) -> None:
    """A 0600 file that appears whole or not at all: a crash while writing leaves only a temp
    file beside it, never an empty secret that would stop every later start."""
    try:
        descriptor, tmp_name = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    except OSError as exc:  # name the file the user knows, not the temp file's random name
        raise OSError(exc.errno, exc.strerror, str(path)) from None
    try:
        with os.fdopen(descriptor, "w", encoding="utf-8") as handle:  # mkstemp makes it 0600
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp_name, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp_name)
        raise
    folder = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(folder)  # the rename itself survives a power cut
    finally:
        os.close(folder)


def presented_token(headers: Mapping[str, str]) -> str:
    """The token a request carries, as X-Dialstatus-Token or `Authorization: Bearer`; here,
    beside the admin token's setting, so the server and the sandbox read it the same way."""
    bearer = headers.get("authorization", "")
    if bearer.lower().startswith("bearer "):
        return bearer[7:].strip()
    return headers.get("x-dialstatus-token", "")


def _admin_token(env: Mapping[str, str], table: Mapping) -> str | None:
    token = _pick(env, table, "DIALSTATUS_ADMIN_TOKEN", "admin_token")
    if token is not None and len(str(token)) < MIN_SECRET_CHARS:
        raise ConfigError(
            f"DIALSTATUS_ADMIN_TOKEN (admin_token) must be at least {MIN_SECRET_CHARS} characters"
        )
    return None if token is None else str(token)


def load_settings(
    env: Mapping[str, str] | None = None, secrets_path: Path | None = None
) -> Settings:
    """Builds the settings, raising ConfigError with the setting's name on any bad value."""
    env = os.environ if env is None else env
    if secrets_path is None:
        secrets_path = Path(env.get("DIALSTATUS_SECRETS_FILE") or DEFAULT_SECRETS_PATH)
    stored = _read_secrets(secrets_path)
    agent_table = stored.get("cloudagent", {})
    table = stored.get("dialstatus", {})

    api_key = str(_pick(env, agent_table, "CLOUDAGENT_API_KEY", "api_key", "") or "")
    demo = api_key == ""
    username = str(_pick(env, agent_table, "CLOUDAGENT_USERNAME", "username", "") or "")
    api_url = str(_pick(env, agent_table, "CLOUDAGENT_API_URL", "api_url", DEFAULT_API_URL))
    if not demo and not username:
        raise ConfigError("CLOUDAGENT_USERNAME is required when CLOUDAGENT_API_KEY is set")
    if not api_url.startswith(("http://", "https://")):
        raise ConfigError(f"CLOUDAGENT_API_URL must be an http(s) URL, got {api_url!r}")
    encoding = _choice(
        _pick(env, agent_table, "CLOUDAGENT_REQUEST_ENCODING", "request_encoding", "json"),
        "CLOUDAGENT_REQUEST_ENCODING (request_encoding)",
        REQUEST_ENCODINGS,
    )
    auth_style = _choice(
        _pick(env, agent_table, "CLOUDAGENT_AUTH_STYLE", "auth_style", "apikey"),
        "CLOUDAGENT_AUTH_STYLE (auth_style)",
        AUTH_STYLES,
    )

    public_url = _pick(env, table, "DIALSTATUS_PUBLIC_URL", "public_url")
    if public_url is not None:
        public_url = str(public_url).rstrip("/")
        if not public_url.startswith(("http://", "https://")):
            raise ConfigError(f"DIALSTATUS_PUBLIC_URL must be an http(s) URL, got {public_url!r}")

    timezone = str(_pick(env, table, "DIALSTATUS_TIMEZONE", "timezone", DEFAULT_TIMEZONE))
    try:
        ZoneInfo(timezone)
    except (ZoneInfoNotFoundError, ValueError):
        raise ConfigError(f"DIALSTATUS_TIMEZONE is not a known time zone: {timezone!r}") from None

    db_path = Path(
        _pick(env, table, "DIALSTATUS_DB", "db", PROJECT_ROOT / "data/dialstatus.duckdb")
    )
    if not db_path.is_absolute():
        db_path = PROJECT_ROOT / db_path
    campaigns = _campaign_list(_pick(env, table, "DIALSTATUS_CAMPAIGNS", "campaigns", ""))
    if demo and not campaigns:
        campaigns = DEMO_CAMPAIGNS
    if demo:
        api_url = ""  # filled in with the server's own sandbox address at startup
        username = DEMO_USERNAME

    interval = _pick(env, table, "DIALSTATUS_SYNC_INTERVAL", "sync_interval", 300)
    callback_timeout = _pick(env, table, "DIALSTATUS_CALLBACK_TIMEOUT", "callback_timeout", 600)
    max_body_mb = _pick(env, table, "DIALSTATUS_MAX_BODY_MB", "max_body_mb", 1024)
    manual_per_hour = _pick(
        env, table, "DIALSTATUS_MANUAL_REQUESTS_PER_HOUR", "manual_requests_per_hour", 30
    )
    keep_days = _pick(env, table, "DIALSTATUS_KEEP_DELIVERIES_DAYS", "keep_deliveries_days", 30)
    keep_events = _pick(env, table, "DIALSTATUS_KEEP_EVENTS_DAYS", "keep_events_days", 400)
    min_free_mb = _pick(env, table, "DIALSTATUS_MIN_FREE_MB", "min_free_mb", 1024)
    try:
        auth = auth_config(stored.get("auth"), env)
    except ValueError as exc:
        raise ConfigError(str(exc)) from None
    return Settings(
        cloudagent=CloudAgentConfig(
            api_url=api_url,
            username=username,
            api_key=api_key,
            request_encoding=encoding,
            auth_style=auth_style,
        ),
        public_url=public_url,
        campaigns=campaigns,
        db_path=db_path,
        timezone=timezone,
        sync_interval_s=_number(interval, "DIALSTATUS_SYNC_INTERVAL", 5),
        callback_timeout_s=_number(callback_timeout, "DIALSTATUS_CALLBACK_TIMEOUT", 1),
        show_phones=_flag(
            _pick(env, table, "DIALSTATUS_SHOW_PHONES", "show_phones", False),
            "DIALSTATUS_SHOW_PHONES",
        ),
        max_body_bytes=int(_number(max_body_mb, "DIALSTATUS_MAX_BODY_MB", 1) * 1024 * 1024),
        manual_requests_per_hour=int(
            _number(manual_per_hour, "DIALSTATUS_MANUAL_REQUESTS_PER_HOUR", 1)
        ),
        keep_deliveries_days=_number(keep_days, "DIALSTATUS_KEEP_DELIVERIES_DAYS", 0, "days"),
        keep_events_days=_number(keep_events, "DIALSTATUS_KEEP_EVENTS_DAYS", 1, "days"),
        min_free_mb=_number(min_free_mb, "DIALSTATUS_MIN_FREE_MB", 0, "MB"),
        callback_secret=_callback_secret(table, env, db_path.parent),
        admin_token=_admin_token(env, table),
        demo=demo,
        sync_enabled=_flag(
            _pick(env, table, "DIALSTATUS_SYNC_ENABLED", "sync_enabled", True),
            "DIALSTATUS_SYNC_ENABLED",
        ),
        auth=auth,
        fields=_field_mapping(stored.get("fields", {})),
        date_order=_choice(
            _pick(env, table, "DIALSTATUS_DATE_ORDER", "date_order", "DMY"),
            "DIALSTATUS_DATE_ORDER (date_order)",
            DATE_ORDERS,
        ),
        number_format=_choice(
            _pick(
                env,
                table,
                "DIALSTATUS_NUMBER_FORMAT",
                "number_format",
                default_number_format(timezone),
            ),
            "DIALSTATUS_NUMBER_FORMAT (number_format)",
            NUMBER_FORMATS,
        ),
    )
