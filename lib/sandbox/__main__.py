"""Runs the sandbox alone: `python -m lib.sandbox --port 8600` (127.0.0.1 only by default)."""

from __future__ import annotations

import argparse
import secrets

import uvicorn

from lib.config import API_PATH, DEMO_USERNAME
from lib.sandbox.app import create_sandbox_app
from lib.sandbox.config import DeliveryVariant, SandboxConfig, default_campaigns


def _campaign(text: str) -> tuple[str, int]:
    name, _, count = text.rpartition("=")
    if not name or not count.isdigit():
        raise argparse.ArgumentTypeError("use NAME=LEADS, e.g. 'Renewals_Q4=5000'")
    return name, int(count)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m lib.sandbox", description=__doc__)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8600)
    parser.add_argument("--api-key", default=None, help="default: a random key, printed")
    parser.add_argument("--username", default=DEMO_USERNAME)
    parser.add_argument("--seed", type=int, default=20240601)
    parser.add_argument(
        "--campaign", type=_campaign, action="append", metavar="NAME=LEADS",
        help="repeatable; default: the demo campaigns",
    )  # fmt: skip
    parser.add_argument("--delivery", choices=[v.value for v in DeliveryVariant],
                        default=DeliveryVariant.JSON_DATA.value)  # fmt: skip
    parser.add_argument("--rate-limit-status", type=int, choices=(200, 429), default=200)
    args = parser.parse_args(argv)

    base_url = f"http://{args.host}:{args.port}"
    config = SandboxConfig(
        api_key=args.api_key or secrets.token_urlsafe(24),
        username=args.username,
        campaigns=dict(args.campaign) if args.campaign else default_campaigns(),
        seed=args.seed,
        delivery=DeliveryVariant(args.delivery),
        rate_limit_http_status=args.rate_limit_status,
        public_base_url=base_url,
    )
    print(f"CloudAgent sandbox on {base_url}")
    print(f"  CLOUDAGENT_API_URL={base_url}{API_PATH}")
    print(f"  CLOUDAGENT_USERNAME={config.username}")
    print(f"  CLOUDAGENT_API_KEY={config.api_key}")
    print(f"  campaigns: {', '.join(f'{n} ({c} leads)' for n, c in config.campaigns.items())}")
    print(f"  request log: {base_url}/_sandbox/requests", flush=True)
    uvicorn.run(create_sandbox_app(config), host=args.host, port=args.port, log_level="info")


if __name__ == "__main__":
    main()
