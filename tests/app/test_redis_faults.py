"""Redis killed and slow under load, against a served `ladle serve` with two workers: every
request is answered (503 while Redis is away, within the configured timeout), the server
stays up, and reads succeed again within a second of Redis returning, with no restart."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import httpx

from tests.app.test_server import ladle_serve, redis_repo
from tests.support import RedisServer

READ = {"entities": {"driver_id": [1, 2]}, "features": ["trips:count"]}


class Load:
    """Threads reading in a loop, each answer recorded as (sent, seconds, status)."""

    def __init__(self, url: str, threads: int = 4) -> None:
        self.url = url
        self.results: list[tuple[float, float, int]] = []
        self.transport_errors: list[str] = []
        self._stop = threading.Event()
        self._threads = [threading.Thread(target=self._run) for _ in range(threads)]

    def _run(self) -> None:
        with httpx.Client(base_url=self.url, timeout=10) as client:
            while not self._stop.is_set():
                sent = time.monotonic()
                try:
                    status = client.post("/get-online-features", json=READ).status_code
                except httpx.TransportError as exc:
                    self.transport_errors.append(repr(exc))
                    continue
                self.results.append((sent, time.monotonic() - sent, status))

    def __enter__(self) -> Load:
        for thread in self._threads:
            thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join()


def test_redis_killed_under_load_fails_fast_and_recovers(tmp_path: Path) -> None:
    server = RedisServer(tmp_path)
    try:
        repo = redis_repo(tmp_path, server, timeout=0.5)
        with (
            ladle_serve(repo, "--workers", "2", "--no-access-log") as served,
            Load(served.url) as load,
        ):
            time.sleep(1.0)
            killed_at = time.monotonic()
            server.process.kill()
            server.process.wait()
            time.sleep(2.0)
            server.restart()
            back_at = time.monotonic()
            time.sleep(2.0)
            assert served.process.poll() is None
        assert not load.transport_errors  # every request got an answer
        before = [r for r in load.results if r[0] + r[1] < killed_at]
        during = [r for r in load.results if killed_at + 0.1 < r[0] < back_at - 0.1]
        assert before and all(status == 200 for _, _, status in before)
        assert during and all(status == 503 for _, _, status in during)
        assert max(seconds for _, seconds, _ in during) < 1.0  # fast, bounded by the timeout
        recovered = [sent for sent, _, status in load.results if sent > back_at and status == 200]
        assert recovered and recovered[0] - back_at < 1.0
        after = [status for sent, _, status in load.results if sent > recovered[0]]
        assert after and set(after) == {200}
    finally:
        server.stop()


def test_slow_redis_is_answered_within_the_configured_timeout(tmp_path: Path) -> None:
    server = RedisServer(tmp_path, "--enable-debug-command", "yes")
    try:
        repo = redis_repo(tmp_path, server, timeout=0.3)
        with ladle_serve(repo, "--workers", "2", "--no-access-log") as served:
            blocker = server.stall(1.5)
            time.sleep(0.1)
            started = time.monotonic()
            response = httpx.post(served.url + "/get-online-features", json=READ, timeout=10)
            assert time.monotonic() - started < 0.8
            assert response.status_code == 503
            assert "did not answer within 0.3 s" in response.json()["detail"][0]["msg"]
            blocker.join()
            ok = httpx.post(served.url + "/get-online-features", json=READ, timeout=10)
            assert ok.status_code == 200
    finally:
        server.stop()
