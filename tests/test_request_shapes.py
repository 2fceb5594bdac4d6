"""Request shapes and auth styles: the client against the real sandbox over HTTP.

Every encoding (JSON body, form body, query string) with every auth style (the apiKey header,
HTTP Basic, a TOKEN_AUTH bearer token); a wrong style refused as CloudAgent refuses a missing
apiKey; the token cached, renewed before it expires, regenerated once when refused, and the
11th generation of an hour refused before anything is sent; no secret in logs or errors.
"""

from __future__ import annotations

import base64
import json
import logging
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest
from starlette.applications import Starlette
from starlette.routing import Mount

from lib.cloudagent import (
    AuthenticationError,
    ClientOptions,
    CloudAgentClient,
    CloudAgentError,
    DialStatusRequest,
    InvalidApiKeyError,
    InvalidCampaignError,
    InvalidUserNameError,
    TokenCache,
    TokenLimitError,
    TokenRejectedError,
    token_url_for,
)
from lib.cloudagent.token import generate_token
from lib.config import API_PATH, SANDBOX_PREFIX, TOKEN_PATH, ConfigError, load_settings
from lib.sandbox import Sandbox, SandboxConfig, create_sandbox_app
from tests.support.asgi import run_asgi, serve_sandbox
from tests.test_cloudagent_client import FakeClock

API_KEY = "KEY-shapes-7c1d9e2a5b-never-print"
USER = "shapes_ops"
CAMPAIGN = "Renewals_Q4"
SECRET = "cb-shapes-secret-0123456789abcdef"
ENCODINGS = ("json", "form", "query")
STYLES = ("apikey", "basic", "token")


def sandbox_config(**overrides) -> SandboxConfig:
    values = {"api_key": API_KEY, "username": USER, "campaigns": {CAMPAIGN: 40},
              "rate_limit": 1000, "delivery_delay_s": 0.0}  # fmt: skip
    values.update(overrides)
    return SandboxConfig(**values)


@pytest.fixture(scope="module")
def sandbox(receiver) -> Iterator[Sandbox]:
    with serve_sandbox(sandbox_config()) as sandbox:
        yield sandbox


@contextmanager
def auth_style(sandbox: Sandbox, style: str) -> Iterator[Sandbox]:
    """The module's sandbox requiring `style` for a while."""
    sandbox.update_config({"auth_style": style})
    try:
        yield sandbox
    finally:
        sandbox.update_config({"auth_style": "apikey"})


@contextmanager
def clocked_sandbox(clock: FakeClock, token_lifetime_s: float) -> Iterator[Sandbox]:
    """A token-mode sandbox on a fake clock, its tokens living `token_lifetime_s`."""
    app = create_sandbox_app(
        sandbox_config(auth_style="token", monotonic=clock), token_lifetime_s=token_lifetime_s
    )
    with run_asgi(app) as base_url:
        app.state.sandbox.base_url = base_url
        yield app.state.sandbox
    app.state.sandbox.close()


def make_client(sandbox: Sandbox, encoding="json", style="apikey", **overrides):
    values = {"api_url": sandbox.base_url + API_PATH, "username": USER, "api_key": API_KEY,
              "request_encoding": encoding, "auth_style": style, "max_retries": 0,
              "tokens": TokenCache()}  # fmt: skip
    values.update(overrides)
    return CloudAgentClient(ClientOptions(**values))


def dial_request(receiver, campaign: str = CAMPAIGN) -> DialStatusRequest:
    return DialStatusRequest(campaign, f"{receiver.base_url}/callback/{SECRET}")


def token_log(sandbox: Sandbox) -> list[dict]:
    return sandbox.token_requests()


def issued(sandbox: Sandbox) -> int:
    return sum(1 for entry in sandbox.token_requests() if entry["issued"])


def assert_hidden(text: str, *secrets: str) -> None:
    for secret in (API_KEY, SECRET, *secrets):
        assert secret not in text, f"a secret leaked: {text[:300]}"


def assert_error_hides(error: BaseException, *secrets: str) -> None:
    texts = [str(error), repr(error), json.dumps([str(arg) for arg in error.args])]
    texts += [str(value) for value in vars(error).values()]
    for text in texts:
        assert_hidden(text, *secrets)


# -- every shape with every style ------------------------------------------------------------


@pytest.mark.parametrize("style", STYLES)
@pytest.mark.parametrize("encoding", ENCODINGS)
def test_every_encoding_is_accepted_in_every_auth_style(sandbox, receiver, encoding, style):
    with auth_style(sandbox, style), make_client(sandbox, encoding, style) as client:
        accepted = client.request_dial_status(dial_request(receiver))
    entry = sandbox.requests()[-1]
    assert entry["outcome"] == "accepted" and entry["unique_id"] == accepted.unique_id
    assert entry["encoding"] == encoding  # the parameters really came that way
    assert entry["params"]["campaignName"] == CAMPAIGN and entry["params"]["userName"] == USER
    assert entry["extra_params"] == []  # no apiKey or other stray parameter travelled with them
    receiver.wait_until(lambda posts: any(
        p.payload().get("uniqueId") == accepted.unique_id for p in posts
    ))  # fmt: skip


@pytest.mark.parametrize(
    ("required", "sent"),
    [(required, sent) for required in STYLES for sent in STYLES
     if required != sent and (required, sent) != ("apikey", "token")],
)  # fmt: skip
def test_a_wrong_auth_style_is_refused_like_a_missing_api_key(sandbox, receiver, required, sent):
    client = make_client(sandbox, "json", sent)
    with auth_style(sandbox, required), pytest.raises(InvalidApiKeyError) as refused:
        client.request_dial_status(dial_request(receiver))
    assert refused.value.server_message == "apiKey is invalid"
    assert refused.value.http_status == 200
    assert_error_hides(refused.value)
    assert sandbox.requests()[-1]["outcome"] == "rejected"


def test_a_token_client_also_sends_the_api_key_but_a_bearer_alone_is_not_accepted(
    sandbox, receiver
):
    """T5: the token style keeps the apiKey header, so an apikey account still accepts it; a
    bearer token without the header is refused wherever the account does not use tokens."""
    with make_client(sandbox, "json", "token") as client:
        assert client.request_dial_status(dial_request(receiver)).unique_id
    token_url = token_url_for(sandbox.base_url + API_PATH)
    with httpx.Client() as http:
        token = generate_token(http, token_url, USER, API_KEY)  # accounts can always make one
        body = dial_request(receiver).to_body(USER)
        for style in ("apikey", "basic"):
            with auth_style(sandbox, style):
                answer = http.post(
                    sandbox.base_url + API_PATH, json=body,
                    headers={"Authorization": f"Bearer {token}"},
                )  # fmt: skip
            assert answer.json()["message"] == "apiKey is invalid", style


def test_basic_refuses_a_wrong_key_or_another_user_in_the_header(sandbox, receiver):
    body = dial_request(receiver).to_body(USER)
    with auth_style(sandbox, "basic"):
        wrong_key = make_client(sandbox, "form", "basic", api_key="wrong-key")
        with pytest.raises(AuthenticationError):
            wrong_key.send(body)
        for credentials in (b"somebody:" + API_KEY.encode(), API_KEY.encode(), b"\xff\xfe"):
            header = "Basic " + base64.b64encode(credentials).decode()
            answer = httpx.post(sandbox.base_url + API_PATH, json=body,
                                headers={"Authorization": header})  # fmt: skip
            expected = "Authentication failed" if b":" in credentials else "apiKey is invalid"
            assert answer.json()["message"] == expected, credentials


def test_query_parameters_count_and_a_body_wins_over_them(sandbox, receiver):
    body = dial_request(receiver).to_body(USER)
    url = sandbox.base_url + API_PATH
    headers = {"apiKey": API_KEY}
    answer = httpx.post(url, params={**body, "campaignName": "No Such"}, json=body,
                        headers=headers)  # fmt: skip
    assert answer.json()["status"] == "success"
    answer = httpx.post(url, params={"campaignName": "No Such"},
                        data={k: v for k, v in body.items() if k != "campaignName"},
                        headers=headers)  # fmt: skip
    assert answer.json()["message"] == "campaignName is invalid"
    assert sandbox.requests()[-1]["encoding"] == "form"


def test_options_are_validated_and_copied_from_the_settings(tmp_path: Path):
    with pytest.raises(ConfigError, match="request_encoding must be one of json, form, query"):
        ClientOptions(api_url="https://h.example/x", username=USER, api_key=API_KEY,
                      request_encoding="xml")  # fmt: skip
    with pytest.raises(ConfigError, match="auth_style must be one of apikey, basic, token"):
        ClientOptions(api_url="https://h.example/x", username=USER, api_key=API_KEY,
                      auth_style="oauth")  # fmt: skip
    with pytest.raises(ConfigError, match="token URL"):
        ClientOptions(api_url="https://h.example/x", username=USER, api_key=API_KEY,
                      token_url="ftp://h.example/t")  # fmt: skip
    env = {"CLOUDAGENT_API_KEY": API_KEY, "CLOUDAGENT_USERNAME": USER,
           "CLOUDAGENT_REQUEST_ENCODING": "Query", "CLOUDAGENT_AUTH_STYLE": "token",
           "DIALSTATUS_DB": str(tmp_path / "db.duckdb")}  # fmt: skip
    options = ClientOptions.from_settings(load_settings(env, tmp_path / "none.toml"))
    assert (options.request_encoding, options.auth_style) == ("query", "token")
    default = ClientOptions(api_url="https://h.example/x", username=USER, api_key=API_KEY)
    assert (default.request_encoding, default.auth_style) == ("json", "apikey")


def test_the_token_url_is_beside_the_api_url():
    assert token_url_for("https://in1-ccaas-api.ozonetel.com" + API_PATH) == (
        "https://in1-ccaas-api.ozonetel.com" + TOKEN_PATH
    )
    # Mounted under a prefix (the demo sandbox at /api/sandbox): the prefix is kept.
    assert token_url_for("http://127.0.0.1:8501/api/sandbox" + API_PATH) == (
        "http://127.0.0.1:8501/api/sandbox" + TOKEN_PATH
    )
    # Another path (a partner's spelling): the host's root; never a user:password@.
    assert token_url_for("https://u:p@partner.example:8443/endpoint/dailer_data?x=1") == (
        "https://partner.example:8443" + TOKEN_PATH
    )
    options = ClientOptions(api_url="https://h.example" + API_PATH, username=USER,
                            api_key=API_KEY, token_url="https://t.example/tok")  # fmt: skip
    assert CloudAgentClient(options).token_url == "https://t.example/tok"


def test_a_sandbox_mounted_under_a_prefix_serves_the_token_beside_its_api(receiver):
    """As the product server mounts the demo sandbox at /api/sandbox: the client finds the
    token URL under the same prefix, so the server needs no route of its own for it."""
    app = create_sandbox_app(sandbox_config(auth_style="token"))
    with run_asgi(Starlette(routes=[Mount(SANDBOX_PREFIX, app=app)])) as base_url:
        app.state.sandbox.base_url = base_url + SANDBOX_PREFIX
        client = make_client(app.state.sandbox, "json", "token")
        assert client.token_url == base_url + SANDBOX_PREFIX + TOKEN_PATH
        assert client.request_dial_status(dial_request(receiver)).unique_id
        assert issued(app.state.sandbox) == 1
    app.state.sandbox.close()


# -- the token: cached, renewed, refused ------------------------------------------------------


def test_one_token_serves_many_requests_clients_and_threads(sandbox, receiver):
    tokens = TokenCache()
    with auth_style(sandbox, "token"):
        before = issued(sandbox)
        first, second = (make_client(sandbox, "json", "token", tokens=tokens) for _ in range(2))
        errors: list[Exception] = []

        def send() -> None:
            try:
                first.request_dial_status(dial_request(receiver))
            except CloudAgentError as error:
                errors.append(error)

        threads = [threading.Thread(target=send) for _ in range(4)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(30)
        for _ in range(3):
            second.request_dial_status(dial_request(receiver))
    assert errors == []
    assert issued(sandbox) - before == 1  # 7 requests from 2 clients and 4 threads, one token
    assert tokens.generated(first.token_url, USER) == 1


def test_the_token_is_renewed_before_it_expires(receiver):
    clock = FakeClock()
    tokens = TokenCache(clock=clock)
    with clocked_sandbox(clock, token_lifetime_s=120) as sandbox:
        client = make_client(sandbox, "json", "token", tokens=tokens, token_lifetime_s=120,
                             token_renew_before_s=20)  # fmt: skip
        body = dial_request(receiver).to_body(USER)
        client.send(body)
        clock.sleep(90)  # 30 s left: still cached
        client.send(body)
        assert issued(sandbox) == 1
        clock.sleep(15)  # 15 s left, inside the 20 s margin: a new token before the old expires
        client.send(body)
        assert issued(sandbox) == 2
        clock.sleep(90)  # the first token has expired at the sandbox; the second is still good
        client.send(body)
        outcomes = [entry["message"] for entry in sandbox.requests()]
    assert issued(sandbox) == 2
    assert outcomes == ["queued successfully"] * 4  # never a "Token Expired" on the way


def test_a_refused_token_is_dropped_and_one_new_token_is_tried(receiver):
    clock = FakeClock()
    with clocked_sandbox(clock, token_lifetime_s=120) as sandbox:
        # The client believes the vendor's 60 minutes; the sandbox ends tokens after 2.
        client = make_client(sandbox, "form", "token", tokens=TokenCache(clock=clock))
        body = dial_request(receiver).to_body(USER)
        client.send(body)
        clock.sleep(121)
        assert client.send(body).unique_id
        assert [e["message"] for e in sandbox.requests()] == [
            "queued successfully", "Token Expired", "queued successfully",
        ]  # fmt: skip
        assert issued(sandbox) == 2
        # Another program generates a token for the account: ours is superseded.
        generate_token(httpx.Client(), client.token_url, USER, API_KEY)
        assert client.send(body).unique_id
        assert issued(sandbox) == 4
    with clocked_sandbox(clock, token_lifetime_s=0) as sandbox:  # every token is stale at once
        client = make_client(sandbox, "json", "token", tokens=TokenCache(clock=clock),
                             max_retries=3)  # fmt: skip
        with pytest.raises(TokenRejectedError, match="Token Expired") as refused:
            client.send(body)
        assert issued(sandbox) == 2  # one new token tried, then the refusal is final
        assert [e["message"] for e in sandbox.requests()] == ["Token Expired"] * 2
    assert_error_hides(refused.value)


def test_the_eleventh_token_in_an_hour_is_refused_without_a_send(receiver):
    clock = FakeClock()
    tokens = TokenCache(clock=clock)
    with clocked_sandbox(clock, token_lifetime_s=100) as sandbox:
        client = make_client(sandbox, "query", "token", tokens=tokens, token_lifetime_s=100,
                             token_renew_before_s=10)  # fmt: skip
        body = dial_request(receiver).to_body(USER)
        for _ in range(10):
            client.send(body)
            clock.sleep(95)  # inside the renewal margin: the next send makes a new token
        assert issued(sandbox) == 10
        client.send(body)  # budget spent, but the 10th token has 5 s left: it is used
        clock.sleep(10)
        sent = len(sandbox.requests())
        with pytest.raises(TokenLimitError) as refused:
            client.send(body)
        assert len(token_log(sandbox)) == 10 and len(sandbox.requests()) == sent  # nothing sent
        # The first token was made at 0 s, it is 960 s now: the next one in 2,640 s.
        assert refused.value.retry_after == pytest.approx(3600 - 960)
        assert "10 were generated in the last hour" in str(refused.value)
        assert "in 44 min" in str(refused.value)
        assert_error_hides(refused.value)

        # A new process (its own budget) asks anyway: the sandbox refuses the 11th itself.
        fresh = make_client(sandbox, "json", "token", tokens=TokenCache(clock=clock))
        with pytest.raises(TokenLimitError) as refused_there:
            fresh.send(body)
        assert (
            refused_there.value.server_message == "Max limit exceeded: at most 10 tokens per hour"
        )
        assert [entry["issued"] for entry in token_log(sandbox)] == [True] * 10 + [False]
        assert tokens.generated(client.token_url, USER) == 10

        clock.sleep(2650)  # the first generation leaves the hour
        assert client.send(body).unique_id
        assert issued(sandbox) == 11


def test_token_generation_errors_are_the_documented_errors(sandbox):
    url = token_url_for(sandbox.base_url + API_PATH)
    with httpx.Client() as http:
        for username, key, error_type, message in [
            ("", API_KEY, InvalidUserNameError, "UserName is null"),
            ("somebody", API_KEY, AuthenticationError, "Invalid userName or apiKey"),
            (USER, "wrong-key", AuthenticationError, "Invalid userName or apiKey"),
            (USER, "", AuthenticationError, "Invalid userName or apiKey"),
        ]:
            with pytest.raises(error_type) as refused:
                generate_token(http, url, username, key)
            assert refused.value.server_message == message
            assert refused.value.stage == "token" and refused.value.http_status == 200
    tokens = TokenCache()
    client = make_client(sandbox, "json", "token", tokens=tokens, api_key="wrong-key")
    with auth_style(sandbox, "token"), pytest.raises(AuthenticationError) as refused:
        client.send({"campaignName": CAMPAIGN, "userName": USER})
    assert refused.value.stage == "token"
    assert tokens.generated(client.token_url, USER) == 0  # a refusal spends no budget


def test_no_secret_in_logs_errors_or_reprs(sandbox, receiver, caplog):
    caplog.set_level(logging.DEBUG)
    tokens = TokenCache()
    seen: list[str] = []
    url = token_url_for(sandbox.base_url + API_PATH)
    with auth_style(sandbox, "token"), httpx.Client() as http:
        token = tokens.token(url, USER, API_KEY, lambda: seen.append(
            generate_token(http, url, USER, API_KEY)) or seen[-1])  # fmt: skip
        errors: list[CloudAgentError] = []
        for encoding in ENCODINGS:
            with make_client(sandbox, encoding, "token", tokens=tokens) as client:
                client.request_dial_status(dial_request(receiver))
                try:
                    client.request_dial_status(dial_request(receiver, "No Such Campaign"))
                except InvalidCampaignError as error:
                    errors.append(error)
                texts = [repr(client), repr(client.options), repr(tokens), str(client.options)]
        sandbox.update_config({"auth_style": "basic"})
        basic_secret = base64.b64encode(f"{USER}:{API_KEY}".encode()).decode()
        with make_client(sandbox, "query", "basic", max_retries=1) as client:
            client.request_dial_status(dial_request(receiver))
        dead = make_client(sandbox, "query", "token", tokens=tokens, max_retries=0,
                           api_url="http://127.0.0.1:9" + API_PATH)  # fmt: skip
        try:
            dead.request_dial_status(dial_request(receiver))
        except CloudAgentError as error:
            errors.append(error)
    assert seen == [token] and len(errors) == 4
    for error in errors:
        assert_error_hides(error, token, basic_secret)
    for text in [
        caplog.text,
        *texts,
        json.dumps(sandbox.requests()),
        json.dumps(token_log(sandbox)),
    ]:
        assert_hidden(text, token, basic_secret)
    assert "?***" in caplog.text  # the query requests were logged, their parameters were not
