"""A faithful local CloudAgent (Campaign Dial Status) with seeded, vectorised demo data.

from lib.sandbox import SandboxConfig, create_sandbox_app
app = create_sandbox_app(SandboxConfig(api_key="k", username="demo_manager"))
"""

from lib.sandbox.app import Sandbox, create_sandbox_app, redact_callback
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
    "redact_callback",
]
