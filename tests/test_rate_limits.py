"""Per-key rate limits: 429 with Retry-After past a bucket's limit, each key and each bucket on its own."""

from __future__ import annotations

import logging
import shutil
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis
from fastapi import HTTPException
from pydantic import ValidationError

from app.cli import main
from app.rate_limits import RateLimiter, build_rate_limiter
from config.settings import Settings
from ingest.broker import free_port


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
    assert 3500 < retry_after(refused) <= 3600
    assert "3 per 1 hour" in str(refused.detail)


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
