"""A faithful local CloudAgent (Campaign Dial Status) with seeded, vectorised demo data.

It never imports `lib.cloudagent`: it is the independent reference the client is tested against,
so a mistake in the client cannot hide behind the same mistake here. What both must agree on
(the API path, the callback secret's redaction, the timestamp format) lives in `lib.config` and
`lib.fields`.

from lib.sandbox import SandboxConfig, create_sandbox_app
app = create_sandbox_app(SandboxConfig(api_key="k", username="demo_manager"))

`field_style` / `date_style` (settings, or `/_sandbox/config` at run time) change how the records
are written; `REPORT_FIELD_NAMES` and `DATE_FORMATS` say how, for tests that check a delivery.
"""

from lib.sandbox.app import Sandbox, create_sandbox_app
from lib.sandbox.config import (
    DateStyle,
    DeliveryVariant,
    ErrorStyle,
    FieldStyle,
    SandboxConfig,
    default_campaigns,
)
from lib.sandbox.datagen import WIRE_FIELDS, generate_campaign
from lib.sandbox.styles import DATE_FORMATS, REPORT_FIELD_NAMES

__all__ = [
    "DATE_FORMATS",
    "REPORT_FIELD_NAMES",
    "WIRE_FIELDS",
    "DateStyle",
    "DeliveryVariant",
    "ErrorStyle",
    "FieldStyle",
    "Sandbox",
    "SandboxConfig",
    "create_sandbox_app",
    "default_campaigns",
    "generate_campaign",
]
