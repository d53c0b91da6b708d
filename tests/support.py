"""Helpers that build small feature repos and real server processes for tests."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import textwrap
import time
from pathlib import Path
from typing import Any

import duckdb
import yaml

CHECKOUT = Path(__file__).resolve().parents[1]


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
    # The checkout under test comes first, whichever checkout the venv was installed from.
    path = os.pathsep.join(filter(None, [str(CHECKOUT), os.environ.get("PYTHONPATH")]))
    env = {**os.environ, "PYTHONUNBUFFERED": "1", "PYTHONPATH": path}
    ladle = Path(sys.executable).parent / "ladle"  # the one installed next to this Python
    result = subprocess.run(
        [str(ladle), *args], cwd=cwd, capture_output=True, text=True, timeout=timeout, env=env
    )
    if check and result.returncode != 0:
        raise AssertionError(f"ladle {' '.join(args)} failed:\n{result.stdout}\n{result.stderr}")
    return result
