"""A faithful local CloudAgent (Campaign Dial Status) with seeded, vectorised demo data.

It never imports `lib.cloudagent`: it is the independent reference the client is tested against,
so a mistake in the client cannot hide behind the same mistake here. What both must agree on
(the API path, the callback secret's redaction, the timestamp format) lives in `lib.config` and
`lib.fields`.

from lib.sandbox import SandboxConfig, create_sandbox_app
app = create_sandbox_app(SandboxConfig(api_key="k", username="demo_manager"))
"""

from lib.sandbox.app import Sandbox, create_sandbox_app
from lib.sandbox.config import DeliveryVariant, ErrorStyle, SandboxConfig, default_campaigns
from lib.sandbox.datagen import WIRE_FIELDS, generate_campaign

__all__ = [
    "WIRE_FIELDS",
    "DeliveryVariant",
    "ErrorStyle",
    "Sandbox",
    "SandboxConfig",
    "create_sandbox_app",
    "default_campaigns",
    "generate_campaign",
]
