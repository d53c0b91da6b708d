"""Helpers that build small feature repos and real server processes for tests."""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import textwrap
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import TYPE_CHECKING, Any

import duckdb
import redis
import yaml

if TYPE_CHECKING:
    from registry.apply import ApplyReport


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_for_port(port: int, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                return
        except OSError:
            time.sleep(0.05)
    raise TimeoutError(f"nothing listens on 127.0.0.1:{port} after {timeout}s")


class RedisServer:
    """A private redis-server process on a free loopback port."""

    def __init__(self, workdir: Path, *extra_args: str, port: int | None = None) -> None:
        binary = shutil.which("redis-server")
        if binary is None:
            raise RuntimeError("redis-server is not installed; run ./scripts/install --test")
        self.port = port or free_port()
        self.args = [
            binary, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "",
            "--appendonly", "no", "--dir", str(workdir), *extra_args,
        ]  # fmt: skip
        self.process = self._start()

    def _start(self) -> subprocess.Popen[bytes]:
        process = subprocess.Popen(self.args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        wait_for_port(self.port)
        return process

    def stall(self, seconds: float) -> threading.Thread:
        """Make Redis answer no one for ``seconds`` (DEBUG SLEEP, which needs the server
        started with ``--enable-debug-command yes``), from a thread started here."""
        client = redis.Redis(port=self.port)
        thread = threading.Thread(target=client.execute_command, args=("DEBUG", "SLEEP", seconds))
        thread.start()
        return thread

    def restart(self) -> None:
        """Start again on the same port, after stop()."""
        self.process = self._start()

    @property
    def connection_string(self) -> str:
        return f"127.0.0.1:{self.port}"

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            self.process.wait(timeout=10)


def write_parquet(path: Path, select_sql: str) -> None:
    """Write the rows of a DuckDB SELECT to a Parquet file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    con = duckdb.connect(":memory:")
    try:
        con.execute("SET TimeZone='UTC'")
        con.execute(f"COPY ({select_sql}) TO '{path}' (FORMAT parquet)")
    finally:
        con.close()


def write_repo(
    root: Path,
    definitions: str,
    *,
    project: str = "test_project",
    online_store: dict[str, Any] | None = None,
    extra_config: dict[str, Any] | None = None,
) -> Path:
    """A feature repo folder: feature_store.yaml plus one definitions file."""
    root.mkdir(parents=True, exist_ok=True)
    config: dict[str, Any] = {
        "project": project,
        "registry": "data/registry.db",
        "provider": "local",
        "online_store": online_store or {"type": "sqlite", "path": "data/online.db"},
    }
    config.update(extra_config or {})
    (root / "feature_store.yaml").write_text(yaml.safe_dump(config))
    (root / "features.py").write_text(textwrap.dedent(definitions))
    return root


def run_cli(
    *args: str, cwd: Path | None = None, check: bool = True, timeout: float = 120
) -> subprocess.CompletedProcess[str]:
    # This checkout's code, even when the venv's editable install points at another one.
    checkout = str(Path(__file__).resolve().parents[1])
    python_path = os.pathsep.join(p for p in (checkout, os.environ.get("PYTHONPATH")) if p)
    env = {**os.environ, "PYTHONUNBUFFERED": "1", "PYTHONPATH": python_path}
    ladle = Path(sys.executable).parent / "ladle"  # the one installed next to this Python
    result = subprocess.run(
        [str(ladle), *args], cwd=cwd, capture_output=True, text=True, timeout=timeout, env=env
    )
    if check and result.returncode != 0:
        raise AssertionError(f"ladle {' '.join(args)} failed:\n{result.stdout}\n{result.stderr}")
    return result


def postgres_bindir() -> Path | None:
    """Where initdb and pg_ctl are: Debian keeps them out of the PATH, per version."""
    candidates = sorted(
        Path("/usr/lib/postgresql").glob("*/bin/initdb"),
        key=lambda p: int(p.parent.parent.name) if p.parent.parent.name.isdigit() else 0,
    )
    if candidates:
        return candidates[-1].parent
    found = shutil.which("initdb")
    return Path(found).resolve().parent if found else None


class PostgresServer:
    """A private PostgreSQL cluster (initdb + pg_ctl) on a free loopback port.

    initdb refuses to run as root, so as root the cluster belongs to the ``postgres``
    system user and every server command runs as that user. Clients log in over TCP as
    ``ladle`` with a password (so tests can check it is never shown); admin commands use
    the cluster's private Unix socket.
    """

    USER = "ladle"
    PASSWORD = "Pg-s3cret-9xq"

    def __init__(self) -> None:
        bindir = postgres_bindir()
        if bindir is None:
            raise RuntimeError("PostgreSQL is not installed; run ./scripts/install --test")
        self.bindir = bindir
        self.port = free_port()
        self.as_root = os.geteuid() == 0
        # Not under pytest's 0700 temp folders: the postgres user must reach it.
        self.root = Path(tempfile.mkdtemp(prefix="ladle-pg-"))
        self.data = self.root / "data"
        if self.as_root:
            shutil.chown(self.root, "postgres", "postgres")
        self._run(
            "initdb", "-D", str(self.data), "-U", "postgres", "-E", "UTF8", "--no-sync",
            "--auth-local=trust", "--auth-host=scram-sha-256",
        )  # fmt: skip
        self.start()
        self.admin(f"CREATE ROLE {self.USER} LOGIN CREATEDB PASSWORD '{self.PASSWORD}'")
        self._databases = 0

    def _run(self, program: str, *args: str) -> subprocess.CompletedProcess[str]:
        command = [str(self.bindir / program), *args]
        if self.as_root:
            command = ["runuser", "-u", "postgres", "--", *command]
        result = subprocess.run(command, capture_output=True, text=True, timeout=60)
        if result.returncode != 0:
            raise RuntimeError(f"{program} failed:\n{result.stdout}\n{result.stderr}")
        return result

    def start(self) -> None:
        options = (
            f"-p {self.port} -k {self.root} -c listen_addresses=127.0.0.1 "
            "-c fsync=off -c synchronous_commit=off -c full_page_writes=off"
        )
        self._run(
            "pg_ctl", "-D", str(self.data), "-l", str(self.root / "server.log"),
            "-o", options, "-w", "-t", "30", "start",
        )  # fmt: skip

    def stop(self) -> None:
        self._run("pg_ctl", "-D", str(self.data), "-m", "fast", "-w", "-t", "30", "stop")

    @property
    def running(self) -> bool:
        return (self.data / "postmaster.pid").exists()

    def admin(self, sql: str, database: str = "postgres") -> str:
        """Run SQL as the superuser over the private socket; returns psql's output."""
        return self._run(
            "psql", "-h", str(self.root), "-p", str(self.port), "-U", "postgres",
            "-d", database, "-v", "ON_ERROR_STOP=1", "-At", "-c", sql,
        ).stdout  # fmt: skip

    def create_database(self) -> str:
        """A new empty database owned by ``ladle``; returns its URL."""
        self._databases += 1
        name = f"test_{self._databases}"
        self.admin(f"CREATE DATABASE {name} OWNER {self.USER}")
        return self.url(name)

    def url(self, database: str, password: str | None = None) -> str:
        secret = self.PASSWORD if password is None else password
        return f"postgresql://{self.USER}:{secret}@127.0.0.1:{self.port}/{database}"

    def cleanup(self) -> None:
        if self.running:
            with contextlib.suppress(RuntimeError):
                self.stop()
        shutil.rmtree(self.root, ignore_errors=True)


def apply_now(root: Path) -> ApplyReport:
    """`ladle apply` in this process, from sync code or from inside an event loop."""
    from registry.apply import apply_repo
    from registry.config import load_repo_config

    with ThreadPoolExecutor(max_workers=1) as pool:
        return pool.submit(asyncio.run, apply_repo(load_repo_config(root))).result()
