"""Per-key rate limits: 429 with Retry-After past a bucket's limit, each key and each bucket on its own."""

from __future__ import annotations

import logging
import shutil
import subprocess
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
import redis
from fastapi import HTTPException
from fastapi.testclient import TestClient
from httpx import Response
from pydantic import ValidationError

from app.auth.roles import Role
from app.cli import main
from app.main import create_app
from app.rate_limits import RateLimiter, build_rate_limiter
from bench.isolation import isolated_settings
from config.settings import Settings
from ingest.broker import EmbeddedBroker, free_port
from tests.auth_helpers import bearer, new_key
from tests.factories import gas_reading


def limiter(storage_uri: str = "memory://", **limits: str) -> RateLimiter:
    return RateLimiter(
        {"ingest": "1000/hour", "api": "1000/hour", "anonymous": "1000/hour", **limits}, storage_uri
    )


def refusal(rl: RateLimiter, bucket: str, identity: str) -> HTTPException:
    with pytest.raises(HTTPException) as refused:
        rl.hit(bucket, identity)
    assert refused.value.status_code == 429
    return refused.value


def retry_after(refused: HTTPException) -> int:
    assert refused.headers is not None
    value = refused.headers["Retry-After"]
    assert value.isdigit(), value
    return int(value)


def test_a_key_gets_its_allowance_then_429_with_retry_after_in_whole_seconds() -> None:
    rl = limiter(ingest="3/hour")
    for _ in range(3):
        rl.hit("ingest", "key-a")
    refused = refusal(rl, "ingest", "key-a")
    # The oldest of the three hits leaves the hour's window in just under an hour.
    wait = retry_after(refused)
    assert 3500 < wait <= 3600
    allowed = "allowed: 3 per 1 hour"
    assert refused.detail == f"too many requests with this ingest key ({allowed}); retry after {wait} s"


def test_a_refusal_says_what_was_counted() -> None:
    rl = limiter(api="1/hour", anonymous="1/hour")
    for bucket, counted in [
        ("api", "too many requests with this key"),
        ("anonymous", "too many failed authentications from this address"),
    ]:
        rl.hit(bucket, "who")
        assert str(refusal(rl, bucket, "who").detail).startswith(counted)


def test_each_key_has_its_own_allowance() -> None:
    rl = limiter(ingest="2/hour")
    rl.hit("ingest", "key-a")
    rl.hit("ingest", "key-a")
    refusal(rl, "ingest", "key-a")
    rl.hit("ingest", "key-b")
    rl.hit("ingest", "key-b")
    refusal(rl, "ingest", "key-b")


def test_an_exhausted_ingest_allowance_leaves_the_same_keys_reads_alone() -> None:
    rl = limiter(ingest="1/hour", api="2/hour")
    rl.hit("ingest", "key-a")
    refusal(rl, "ingest", "key-a")
    rl.hit("api", "key-a")
    rl.hit("api", "key-a")
    refusal(rl, "api", "key-a")
    refusal(rl, "ingest", "key-a")


@pytest.mark.parametrize(
    ("limits", "low", "high"),
    [
        ("5/minute; 2/hour", 3500, 3600),  # the hour's limit refuses: wait for it, not the minute's
        ("2/minute; 5/hour", 1, 60),
        ("2/minute; 2/hour", 3500, 3600),  # both refuse: the later of the two
    ],
)
def test_retry_after_is_the_wait_for_every_refusing_limit(limits: str, low: int, high: int) -> None:
    rl = limiter(api=limits)
    rl.hit("api", "key-a")
    rl.hit("api", "key-a")
    assert low <= retry_after(refusal(rl, "api", "key-a")) <= high


def test_a_refused_request_uses_up_nothing() -> None:
    # Refused by the minute's limit, the third request must not still be counted against the hour's.
    rl = limiter(api="3/hour; 2/minute")
    rl.hit("api", "key-a")
    rl.hit("api", "key-a")
    for _ in range(5):
        refusal(rl, "api", "key-a")
    assert rl.remaining("api", "key-a") == [1, 0]


def test_an_unknown_bucket_is_a_programming_error() -> None:
    with pytest.raises(ValueError, match="no rate limit bucket 'reads'"):
        limiter().hit("reads", "key-a")


def test_the_settings_build_the_limiter_and_can_turn_it_off() -> None:
    built = build_rate_limiter(Settings(rate_limit_anonymous="1/hour"))
    assert built is not None
    built.hit("anonymous", "10.0.0.7")
    refusal(built, "anonymous", "10.0.0.7")
    assert build_rate_limiter(Settings(rate_limits_enabled=False)) is None


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("rate_limit_api", "10/sec", "not a rate limit"),
        ("rate_limit_ingest", "", "not a rate limit"),
        ("rate_limit_anonymous", "0/minute", "at least 1"),
        ("rate_limit_storage_uri", "memcached://localhost:11211", "cannot keep a moving window"),
        ("rate_limit_storage_uri", "async+memory://", "not a storage"),
        ("rate_limit_storage_uri", "postgresql://localhost/test", "not a storage"),
    ],
)
def test_a_bad_limit_or_storage_fails_at_load(field: str, value: str, message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        Settings(**{field: value})  # type: ignore[arg-type]


def test_citywarn_check_names_a_bad_limit(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("CITYWARN_DATABASE_URL", f"sqlite:///{tmp_path}/state.sqlite3")
    monkeypatch.setenv("CITYWARN_STORE_URL", f"file://{tmp_path}/store.sqlite3")
    monkeypatch.setenv("CITYWARN_RATE_LIMIT_INGEST", "20 a second")
    with pytest.raises(SystemExit) as exit_info:
        main(["check"])
    assert exit_info.value.code == 2
    [line] = capsys.readouterr().err.splitlines()
    assert line.startswith("environment: CITYWARN_RATE_LIMIT_INGEST: ")
    assert "'20 a second' is not a rate limit" in line


@pytest.fixture(scope="module")
def redis_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A private redis-server on a free loopback port, as several API processes would share."""
    server = shutil.which("redis-server")
    if server is None:
        pytest.skip("redis-server is not installed")
    port = free_port()
    workdir = tmp_path_factory.mktemp("redis")
    child = subprocess.Popen(
        [server, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--dir", str(workdir)],
        stdout=subprocess.DEVNULL,
    )
    try:
        client = redis.Redis(host="127.0.0.1", port=port)
        deadline = time.monotonic() + 10
        while True:
            try:
                client.ping()
                break
            except redis.ConnectionError:
                if child.poll() is not None or time.monotonic() > deadline:
                    pytest.fail("redis-server did not start")
                time.sleep(0.05)
        yield f"redis://127.0.0.1:{port}"
    finally:
        child.terminate()
        child.wait(timeout=10)


def test_processes_sharing_a_redis_share_each_keys_allowance(redis_url: str) -> None:
    first, second = limiter(redis_url, ingest="3/hour"), limiter(redis_url, ingest="3/hour")
    first.hit("ingest", "shared-key")
    second.hit("ingest", "shared-key")
    first.hit("ingest", "shared-key")
    assert 3500 < retry_after(refusal(second, "ingest", "shared-key")) <= 3600
    second.hit("ingest", "other-key")


def test_an_unreachable_storage_lets_requests_through_and_says_so(caplog: pytest.LogCaptureFixture) -> None:
    rl = limiter(f"redis://127.0.0.1:{free_port()}", api="1/hour")
    with caplog.at_level(logging.WARNING, logger="app.rate_limits"):
        for _ in range(3):
            rl.hit("api", "key-a")
    warnings = [r for r in caplog.records if r.name == "app.rate_limits"]
    assert len(warnings) == 1, "one warning per outage, not one per request"
    assert "not limited" in warnings[0].getMessage()


# --- through the app: create_app with real settings, keys in the state database, Kafka behind ingest


@pytest.fixture
def app_client(broker: EmbeddedBroker, tmp_path: Path) -> Iterator[TestClient]:
    """The whole app with low limits and no key of its own; every request comes from one address."""
    settings = isolated_settings(
        bootstrap=broker.bootstrap,
        store_url=f"file://{tmp_path}/store.sqlite3",
        database_url=f"sqlite:///{tmp_path}/state.sqlite3",
        rate_limit_ingest="3/hour",
        rate_limit_api="20/hour",
        rate_limit_anonymous="3/hour",
    )
    with TestClient(create_app(settings)) as client:
        yield client


def key(client: TestClient, role: Role, label: str) -> dict[str, str]:
    return bearer(new_key(client.app, role, label))  # type: ignore[arg-type]


def post_reading(client: TestClient, headers: dict[str, str]) -> Response:
    return client.post("/v1/readings", json={"readings": [gas_reading()]}, headers=headers)


def a_report() -> dict[str, object]:
    ts = datetime.now(UTC).replace(microsecond=0).isoformat()
    return {
        "report_id": "r-1",
        "source": "app",
        "category": "waterlogging",
        "text": "water on the road",
        "ts": ts,
        "area": "g-riverside-05",
    }


def assert_too_many(resp: Response, within_s: int) -> None:
    assert resp.status_code == 429, resp.text
    wait = int(resp.headers["Retry-After"])
    assert 1 <= wait <= within_s
    assert resp.headers["content-type"].startswith("application/problem+json")
    problem = resp.json()
    assert problem["status"] == 429
    assert problem["detail"].startswith("too many ") and problem["detail"].endswith(f"retry after {wait} s")


def test_an_ingest_flood_gets_429_while_an_operators_reads_keep_answering(app_client: TestClient) -> None:
    gateway = key(app_client, Role.INGEST, "gateway north")
    operator = key(app_client, Role.OPERATOR, "duty officer")
    posted = []
    for _ in range(10):
        posted.append(post_reading(app_client, gateway))
        assert app_client.get("/v1/warnings", headers=operator).status_code == 200
    assert [r.status_code for r in posted[:3]] == [202] * 3
    for refused in posted[3:]:
        assert_too_many(refused, 3600)
    # Reports are ingest too, and share the key's allowance.
    assert_too_many(app_client.post("/v1/reports", json={"reports": [a_report()]}, headers=gateway), 3600)


def test_one_ingest_keys_flood_leaves_another_ingest_key_alone(app_client: TestClient) -> None:
    north, south = (
        key(app_client, Role.INGEST, "gateway north"),
        key(app_client, Role.INGEST, "gateway south"),
    )
    for _ in range(3):
        assert post_reading(app_client, north).status_code == 202
    assert_too_many(post_reading(app_client, north), 3600)
    assert [post_reading(app_client, south).status_code for _ in range(3)] == [202] * 3


def test_an_operator_past_the_api_limit_is_refused_and_ingest_goes_on(app_client: TestClient) -> None:
    operator = key(app_client, Role.OPERATOR, "console script")
    gateway = key(app_client, Role.INGEST, "gateway north")
    assert {app_client.get("/v1/warnings", headers=operator).status_code for _ in range(20)} == {200}
    assert_too_many(app_client.get("/v1/warnings", headers=operator), 3600)
    assert post_reading(app_client, gateway).status_code == 202


def test_failed_authentications_from_one_address_get_429_and_valid_keys_do_not(
    app_client: TestClient,
) -> None:
    operator = key(app_client, Role.OPERATOR, "duty officer")
    wrong = bearer("cwk_nosuchkey_" + "x" * 43)
    attempts = [app_client.get("/v1/warnings"), app_client.get("/v1/warnings", headers=wrong)]
    attempts.append(app_client.get("/v1/warnings", headers=wrong))
    assert [r.status_code for r in attempts] == [401] * 3
    assert_too_many(app_client.get("/v1/warnings", headers=wrong), 3600)
    assert_too_many(app_client.get("/v1/warnings"), 3600)
    assert app_client.get("/v1/warnings", headers=operator).status_code == 200


def test_limits_turned_off_let_a_flood_through(broker: EmbeddedBroker, tmp_path: Path) -> None:
    settings = isolated_settings(
        bootstrap=broker.bootstrap,
        store_url=f"file://{tmp_path}/store.sqlite3",
        database_url=f"sqlite:///{tmp_path}/state.sqlite3",
        rate_limits_enabled=False,
        rate_limit_ingest="1/hour",
    )
    with TestClient(create_app(settings)) as client:
        gateway = key(client, Role.INGEST, "bulk load")
        assert [post_reading(client, gateway).status_code for _ in range(3)] == [202] * 3
