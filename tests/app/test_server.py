"""`ladle serve` as an operator runs it: TLS, worker supervision, recycling, overload,
slow clients, the access log and SIGTERM under load. Each test starts real processes."""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from pathlib import Path

import httpx
import pytest
import yaml

from tests.app.conftest import serve as serve_in_process
from tests.app.test_offline_batching import make_repo, offline_rows, push
from tests.support import RedisServer, free_port, run_cli

LADLE = str(Path(sys.executable).parent / "ladle")
READ = {"entities": {"driver_id": [1001, 1002]}, "features": ["driver_hourly_stats:conv_rate"]}


TRIPS_READ = {"entities": {"driver_id": [1]}, "features": ["trips:count"]}


def redis_repo(tmp_path: Path, server: RedisServer, timeout: float | None = None) -> Path:
    """A small repo (a `trips` view, a push source) on a private Redis."""
    store: dict[str, object] = {"type": "redis", "connection_string": server.connection_string}
    if timeout is not None:
        store["timeout_seconds"] = timeout
    return make_repo(tmp_path / "repo", batch_size=1, interval=1, online_store=store)


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("server")
    run_cli("init", "demo", cwd=root)
    run_cli("apply", cwd=root / "demo")
    run_cli("materialize-incremental", "now", cwd=root / "demo")
    return root / "demo"


class Served:
    def __init__(self, process: subprocess.Popen[str], port: int, scheme: str) -> None:
        self.process = process
        self.port = port
        self.url = f"{scheme}://127.0.0.1:{port}"
        self.lines: list[str] = []
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            self.lines.append(line)

    @property
    def output(self) -> str:
        return "".join(self.lines)

    def wait_for_output(self, text: str, timeout: float = 30) -> None:
        deadline = time.monotonic() + timeout
        while text not in self.output:
            assert time.monotonic() < deadline, f"no {text!r} in:\n{self.output}"
            time.sleep(0.05)

    def finish(self, timeout: float) -> None:
        self.process.wait(timeout=timeout)
        self._reader.join(timeout=10)

    def workers(self) -> list[int]:
        """The worker processes' pids (spawned children, not multiprocessing's tracker)."""
        pids = []
        for entry in Path("/proc").iterdir():
            if not entry.name.isdigit():
                continue
            try:
                stat = (entry / "stat").read_text()
                cmdline = (entry / "cmdline").read_bytes()
            except OSError:
                continue
            parent = int(stat.rsplit(")", 1)[1].split()[1])
            if parent == self.process.pid and b"spawn_main" in cmdline:
                pids.append(int(entry.name))
        return sorted(pids)

    def wait_for_workers(self, count: int, timeout: float = 30) -> list[int]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            pids = self.workers()
            if len(pids) == count:
                return pids
            time.sleep(0.1)
        raise AssertionError(f"expected {count} workers, found {self.workers()}")


@contextmanager
def ladle_serve(
    repo: Path, *args: str, scheme: str = "http", verify: ssl.SSLContext | bool = True
) -> Iterator[Served]:
    port = free_port()
    process = subprocess.Popen(
        [LADLE, "serve", "--port", str(port), *args],
        cwd=repo,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    served = Served(process, port, scheme)
    try:
        deadline = time.monotonic() + 30
        while True:
            assert process.poll() is None, process.stdout.read() if process.stdout else ""
            try:
                if httpx.get(served.url + "/health", verify=verify, timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            assert time.monotonic() < deadline, "the server did not become healthy"
            time.sleep(0.1)
        yield served
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
        try:
            served.finish(timeout=60)
        except subprocess.TimeoutExpired:
            process.kill()
            served.finish(timeout=10)


def test_tls_round_trip_with_a_self_signed_certificate(demo: Path, tmp_path: Path) -> None:
    key, cert = tmp_path / "key.pem", tmp_path / "cert.pem"
    subprocess.run(
        [
            "openssl",
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-days",
            "1",
            "-keyout",
            str(key),
            "-out",
            str(cert),
            "-subj",
            "/CN=localhost",
            "-addext",
            "subjectAltName=IP:127.0.0.1,DNS:localhost",
        ],
        check=True,
        capture_output=True,
    )
    trusted = ssl.create_default_context(cafile=str(cert))
    with ladle_serve(
        demo, "--key", str(key), "--cert", str(cert), scheme="https", verify=trusted
    ) as served:
        response = httpx.post(served.url + "/get-online-features", json=READ, verify=trusted)
        assert response.status_code == 200
        assert response.json()["results"][1]["statuses"] == ["PRESENT", "PRESENT"]
        with pytest.raises(httpx.ConnectError):  # an untrusting client refuses the certificate
            httpx.get(served.url + "/health", verify=True)
        with pytest.raises(httpx.HTTPError):  # no plain HTTP on the TLS port
            httpx.get(f"http://127.0.0.1:{served.port}/health", timeout=2)
    assert f"on https://127.0.0.1:{served.port}" in served.output


def test_a_killed_worker_is_replaced_while_the_others_serve(demo: Path) -> None:
    with ladle_serve(demo, "--workers", "2", "--no-access-log") as served:
        # Killed during startup, a worker would stop the server (on purpose): wait.
        served.wait_for_output("all 2 workers ready")
        before = served.wait_for_workers(2)
        os.kill(before[0], signal.SIGKILL)
        # The survivor answers at once; nothing waits for the replacement.
        with httpx.Client(base_url=served.url, timeout=5) as client:
            time.sleep(0.2)
            for _ in range(50):
                assert client.post("/get-online-features", json=READ).status_code == 200
        after = served.wait_for_workers(2)
        assert before[1] in after and before[0] not in after
        assert served.process.poll() is None
        for _ in range(20):  # fresh connections reach both workers
            assert httpx.post(served.url + "/get-online-features", json=READ).status_code == 200
    assert "died (exit code -9); starting a replacement" in served.output


def test_max_requests_recycles_workers_without_failing_requests(demo: Path) -> None:
    with ladle_serve(demo, "--max-requests", "25", "--no-access-log") as served:
        first = served.wait_for_workers(1)
        for _ in range(80):  # a new connection each time, as after a recycle
            response = httpx.post(served.url + "/get-online-features", json=READ, timeout=30)
            assert response.status_code == 200
        assert served.wait_for_workers(1) != first
    assert served.output.count("max requests reached") >= 2


def test_startup_failure_stops_the_server_with_an_error(tmp_path: Path) -> None:
    run_cli("init", "demo", cwd=tmp_path)
    repo = tmp_path / "demo"
    run_cli("apply", cwd=repo)
    (repo / "static_artifacts.py").write_text(
        "def load_artifacts(app):\n    raise RuntimeError('model file missing')\n"
    )
    started = time.monotonic()
    result = subprocess.run(
        [LADLE, "serve", "--port", str(free_port()), "--workers", "2"],
        cwd=repo,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode != 0
    assert "model file missing" in result.stdout + result.stderr
    assert "failed to start" in result.stderr
    assert time.monotonic() - started < 30


def test_access_log_is_one_json_line_per_request_and_can_be_switched_off(demo: Path) -> None:
    with ladle_serve(demo) as served:
        httpx.post(served.url + "/get-online-features", json=READ)
        httpx.get(served.url + "/nowhere")
    lines = [json.loads(x) for x in served.output.splitlines() if x.startswith('{"time"')]
    by_path = {line["path"]: line for line in lines}
    assert by_path["/get-online-features"]["status"] == 200
    assert by_path["/get-online-features"]["method"] == "POST"
    assert by_path["/get-online-features"]["bytes"] > 0
    assert by_path["/nowhere"]["status"] == 404
    assert set(by_path["/nowhere"]) == {
        "time",
        "client",
        "method",
        "path",
        "status",
        "bytes",
        "duration_ms",
    }
    with ladle_serve(demo, "--no-access-log") as quiet:
        httpx.post(quiet.url + "/get-online-features", json=READ)
    assert '{"time"' not in quiet.output


def test_worker_connections_overload_is_answered_with_503(tmp_path: Path) -> None:
    """Redis made to stall holds requests in flight; past the cap they are refused at once."""
    redis_server = RedisServer(tmp_path, "--enable-debug-command", "yes")
    try:
        root = redis_repo(tmp_path, redis_server)
        with ladle_serve(root, "--worker-connections", "3", "--no-access-log") as served:
            stall = redis_server.stall(1.5)
            time.sleep(0.2)
            results: list[httpx.Response] = []

            def call() -> None:
                results.append(
                    httpx.post(served.url + "/get-online-features", json=TRIPS_READ, timeout=10)
                )

            callers = [threading.Thread(target=call) for _ in range(12)]
            for caller in callers:
                caller.start()
            time.sleep(0.3)
            probe = httpx.get(served.url + "/health", timeout=10)  # probes are never refused
            for caller in callers:
                caller.join()
            stall.join()
            statuses = sorted(r.status_code for r in results)
            assert statuses.count(200) == 3, statuses
            assert statuses.count(503) == 9, statuses
            refused = next(r for r in results if r.status_code == 503)
            assert refused.headers["retry-after"] == "1"
            assert refused.json()["detail"][0]["type"] == "overloaded"
            assert probe.status_code == 200
            # Nothing leaked: the full capacity is back.
            assert (
                httpx.post(served.url + "/get-online-features", json=TRIPS_READ).status_code == 200
            )
            assert served.process.poll() is None
    finally:
        redis_server.stop()


def test_slow_clients_cannot_hold_a_worker(demo: Path, tmp_path: Path) -> None:
    repo = tmp_path / "demo"
    shutil.copytree(demo, repo)
    config = yaml.safe_load((repo / "feature_store.yaml").read_text())
    config.setdefault("feature_server", {})["limits"] = {"body_timeout_seconds": 1}
    (repo / "feature_store.yaml").write_text(yaml.safe_dump(config))
    with ladle_serve(
        repo, "--keep-alive-timeout", "1", "--worker-connections", "50", "--no-access-log"
    ) as served:
        headers_only: list[socket.socket] = []
        body_started: list[socket.socket] = []
        for i in range(200):
            sock = socket.create_connection(("127.0.0.1", served.port))
            sock.sendall(b"POST /get-online-features HTTP/1.1\r\nHost: x\r\n")
            if i < 40:  # a body that never ends holds a request slot...
                sock.sendall(b"Content-Length: 1000\r\n\r\n{")
                body_started.append(sock)
            else:  # ...headers that never end do not
                headers_only.append(sock)
        response = httpx.post(served.url + "/get-online-features", json=READ, timeout=5)
        assert response.status_code == 200
        time.sleep(1.5)
        for sock in body_started:  # the body deadline answers 408
            sock.settimeout(2)
            assert sock.recv(4096).startswith(b"HTTP/1.1 408 "), "no 408 for a stalled body"
        for sock in headers_only:  # the keep-alive timeout closes unfinished headers
            sock.settimeout(2)
            with suppress(ConnectionResetError):
                assert sock.recv(1) == b""
        for sock in [*headers_only, *body_started]:
            sock.close()
        assert httpx.post(served.url + "/get-online-features", json=READ).status_code == 200
    assert served.process.returncode == 0


def test_sigterm_under_load_loses_no_acknowledged_push(tmp_path: Path) -> None:
    redis_server = RedisServer(tmp_path)
    try:
        root = make_repo(
            tmp_path / "repo",
            batch_size=10_000,
            interval=3600,
            online_store={"type": "redis", "connection_string": redis_server.connection_string},
        )
        acknowledged: list[int] = []
        failed: list[str] = []
        with ladle_serve(root, "--workers", "2", "--no-access-log") as served:

            def pusher(first: int) -> None:
                with httpx.Client(base_url=served.url, timeout=10) as client:
                    for driver in range(first, first + 100_000):
                        try:
                            response = client.post(
                                "/push", json=push([driver], "online_and_offline")
                            )
                        except httpx.TransportError:
                            return  # the server stopped accepting: expected
                        if response.status_code == 202:
                            acknowledged.append(driver)
                        else:
                            failed.append(response.text)

            threads = [threading.Thread(target=pusher, args=(n * 100_000,)) for n in (1, 2, 3, 4)]
            for thread in threads:
                thread.start()
            time.sleep(1.5)
            served.process.send_signal(signal.SIGTERM)
            assert served.process.wait(timeout=60) == 0
            for thread in threads:
                thread.join()
        assert len(acknowledged) > 50 and not failed
        offline = {row[0] for row in offline_rows(root)}
        assert set(acknowledged) <= offline
        online = asyncio_read(root, acknowledged)
        assert online == [d * 10 for d in acknowledged]
    finally:
        redis_server.stop()


def asyncio_read(root: Path, drivers: list[int]) -> list[object]:
    import asyncio

    async def read() -> list[object]:
        async for client in serve_in_process(root):
            body = {"entities": {"driver_id": drivers}, "features": ["trips:count"]}
            response = await client.post("/get-online-features", json=body)
            return list(response.json()["results"][1]["values"])
        raise AssertionError("unreachable")

    return asyncio.run(read())


def test_workers_stop_when_the_supervisor_is_killed(demo: Path) -> None:
    with ladle_serve(demo, "--workers", "2", "--no-access-log") as served:
        served.wait_for_output("all 2 workers ready")
        workers = served.wait_for_workers(2)
        served.process.kill()
        served.process.wait(timeout=10)
        deadline = time.monotonic() + 20
        while any(Path(f"/proc/{pid}").exists() for pid in workers):
            assert time.monotonic() < deadline, "orphaned workers kept running"
            time.sleep(0.1)


def test_sigterm_finishes_in_flight_requests_and_refuses_new_connections(tmp_path: Path) -> None:
    redis_server = RedisServer(tmp_path, "--enable-debug-command", "yes")
    try:
        root = redis_repo(tmp_path, redis_server)
        with ladle_serve(root, "--no-access-log", "--graceful-timeout", "10") as served:
            stall = redis_server.stall(1.5)
            time.sleep(0.2)
            answers: list[int] = []
            in_flight = threading.Thread(
                target=lambda: answers.append(
                    httpx.post(
                        served.url + "/get-online-features", json=TRIPS_READ, timeout=10
                    ).status_code
                )
            )
            in_flight.start()
            time.sleep(0.3)  # the request now waits on Redis
            served.process.send_signal(signal.SIGTERM)
            time.sleep(0.3)
            with pytest.raises(httpx.ConnectError):  # no longer accepting
                httpx.post(served.url + "/get-online-features", json=TRIPS_READ, timeout=2)
            in_flight.join()
            stall.join()
            assert served.process.wait(timeout=30) == 0
        assert answers == [200]  # the in-flight request was finished, not cut
    finally:
        redis_server.stop()
