"""Goal 6, API economy: an hour of keeping 20 campaigns fresh at the default interval, simulated
on a fake clock (no sleeping), incremental sync against the naive full reload.

Real parts: `SlidingWindowLimiter` (10 per 60 s, its 1 s margin) with an injected clock whose
sleep advances time, `DialStatusRequest.to_body` for every request, the sandbox's own validation
and rate-limit window (`Sandbox.check`, which would answer "Max limit exceeded") and its data
(`CampaignData.select`: the records CloudAgent would deliver at that moment, later versions of
about 10% of leads appearing over the hours after the start). Mirrored: the sync engine's round
(every campaign queued each `sync_interval_s`, sent one at a time through the limiter) and its
request (`SyncEngine._refresh_request`: a full load first, then updated since the watermark minus
`WATERMARK_OVERLAP` up to now plus the overlap); deliveries land at once and move the watermark.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

from bench.common import SEED, TZ
from lib.cloudagent import DialStatusRequest, LeadStatus, SortBy
from lib.cloudagent.ratelimit import SlidingWindowLimiter
from lib.config import load_settings
from lib.sandbox import SandboxConfig
from lib.sandbox.app import Sandbox
from lib.sandbox.datagen import local_seconds
from lib.sandbox.encode import records_json
from lib.sync import WATERMARK_OVERLAP

ACCOUNT = "bench_manager"
CALLBACK = "http://127.0.0.1:9/api/callback/not-a-real-secret-0000"


class FakeClock:
    def __init__(self) -> None:
        self.t = 0.0

    def now(self) -> float:
        return self.t

    def sleep(self, seconds: float) -> None:
        self.t += max(0.0, seconds)


def default_interval() -> float:
    settings = load_settings(env={"DIALSTATUS_CALLBACK_SECRET": "x" * 24}, secrets_path=None)
    return settings.sync_interval_s


def _max_in_window(stamps: list[float], window: float = 60.0) -> int:
    """The most requests whose send times fall within any `window`-second interval."""
    best, start = 0, 0
    for end, stamp in enumerate(stamps):
        while stamp - stamps[start] >= window:
            start += 1
        best = max(best, end - start + 1)
    return best


def simulate(strategy: str, leads_per_campaign: int, campaigns: int = 20, hours: float = 1.0):
    clock = FakeClock()
    start = datetime.now(ZoneInfo(TZ)).replace(microsecond=0)
    names = [f"Economy {i:02d}" for i in range(1, campaigns + 1)]
    sandbox = Sandbox(
        SandboxConfig(
            api_key="bench-key-0123456789abcdef",
            username=ACCOUNT,
            campaigns=dict.fromkeys(names, leads_per_campaign),
            seed=SEED,
            clock=lambda: start + timedelta(seconds=clock.now()),
            monotonic=clock.now,
            timezone=TZ,
        )
    )
    limiter = SlidingWindowLimiter(clock=clock.now, sleep=clock.sleep)
    interval = default_interval()
    watermark: dict[str, datetime | None] = dict.fromkeys(names)
    sent: list[float] = []
    records = 0
    refused = 0
    next_round = 0.0
    try:
        while next_round < hours * 3600:
            clock.t = max(clock.t, next_round)
            next_round = clock.t + interval
            for name in names:  # the round's queue, sent one at a time
                limiter.acquire(ACCOUNT)
                local_now = (start + timedelta(seconds=clock.now())).replace(tzinfo=None)
                if strategy == "naive" or watermark[name] is None:
                    request = DialStatusRequest(campaign_name=name, callback_url=CALLBACK)
                else:
                    request = DialStatusRequest(
                        campaign_name=name,
                        callback_url=CALLBACK,
                        from_date=watermark[name] - WATERMARK_OVERLAP,
                        to_date=local_now + WATERMARK_OVERLAP,
                        sortby=SortBy.UPDATED,
                        status=LeadStatus.ALL,
                    )
                request.validate(TZ)
                decision = sandbox.check(
                    sandbox.config.api_key, request.to_body(ACCOUNT), clock.now()
                )
                sent.append(clock.now())
                if decision.outcome != "accepted":
                    refused += 1
                    continue
                delivered = sandbox.campaign_data(name).select(
                    decision.selection, local_seconds(local_now)
                )
                records += delivered.num_rows
                if delivered.num_rows:
                    newest = max(delivered.column("UpdatedDate").to_pylist())
                    newest_dt = datetime.strptime(newest, "%Y-%m-%d %H:%M:%S")
                    if watermark[name] is None or newest_dt > watermark[name]:
                        watermark[name] = newest_dt
        sample = sandbox.campaign_data(names[0]).table.slice(0, 2000)
        bytes_per_record = len(records_json(sample)) / max(1, sample.num_rows)
    finally:
        sandbox.close()
    return {
        "requests": len(sent),
        "records": records,
        "mb_estimate": round(records * bytes_per_record / 1e6, 1),
        "max_requests_in_60s": _max_in_window(sent),
        "refused_by_sandbox": refused,
        "simulated_s": round(clock.now(), 1),
    }


def measure(leads_per_campaign: int, campaigns: int = 20) -> dict:
    interval = default_interval()
    incremental = simulate("incremental", leads_per_campaign, campaigns)
    naive = simulate("naive", leads_per_campaign, campaigns)
    initial = campaigns * leads_per_campaign
    after_first = incremental["records"] - initial
    naive_after_first = naive["records"] - initial
    out = {
        "campaigns": campaigns,
        "leads_per_campaign": leads_per_campaign,
        "interval_s": interval,
        "incremental": incremental,
        "naive": naive,
        "records_saved_pct": 100 * (1 - incremental["records"] / naive["records"]),
        "refresh_records_saved_pct": 100 * (1 - after_first / naive_after_first)
        if naive_after_first
        else None,
        "limit_respected": max(incremental["max_requests_in_60s"], naive["max_requests_in_60s"])
        <= 10
        and incremental["refused_by_sandbox"] == naive["refused_by_sandbox"] == 0,
    }
    assert out["limit_respected"], out
    return out
