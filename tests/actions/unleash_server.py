"""A real Unleash OSS server for e2e tests: npm package cached in .cache/unleash, throwaway DB.

Follows REAL-PARTS.md §3: unleash-server 7.5.1 (the last that runs on Node 20), configured by
environment, listening on a free loopback port, backed by a fresh database in the local
PostgreSQL that is dropped afterwards. The server is stopped by its own PID.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import secrets
import socket
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import psycopg

from bot.serving import stop_process, wait_until

VERSION = "7.5.1"
CACHE = Path(__file__).resolve().parents[2] / ".cache" / "unleash"
PG = "host=127.0.0.1 port=5432 user=postgres dbname=postgres"
SERVER_JS = """const unleash = require('unleash-server');
unleash.start({}).catch((err) => { console.error(err); process.exit(1); });
"""


@dataclass
class Unleash:
    url: str
    admin_token: str

    def admin(self) -> httpx.Client:
        return httpx.Client(base_url=self.url, headers={"Authorization": self.admin_token}, timeout=10)


def ensure_installed() -> Path:
    CACHE.mkdir(parents=True, exist_ok=True)
    # A file lock, so two test workers (pytest-xdist) never run npm into the same folder at once
    # nor rewrite server.js while the other's node reads it.
    with open(CACHE / ".install.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not (CACHE / "node_modules" / "unleash-server" / "package.json").exists():
            subprocess.run(["npm", "install", "--prefix", str(CACHE), f"unleash-server@{VERSION}", "--no-audit",
                            "--no-fund"], check=True, timeout=600, capture_output=True)
        server_js = CACHE / "server.js"
        if not server_js.exists() or server_js.read_text() != SERVER_JS:
            server_js.write_text(SERVER_JS)
    return CACHE


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@contextlib.contextmanager
def throwaway_database() -> Iterator[str]:
    name = f"warroom_unleash_{secrets.token_hex(4)}"
    with psycopg.connect(PG, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    try:
        yield f"postgres://postgres@127.0.0.1:5432/{name}"
    finally:
        with psycopg.connect(PG, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@contextlib.contextmanager
def unleash_server(start_timeout: float = 90.0) -> Iterator[Unleash]:
    folder = ensure_installed()
    admin_token = f"*:*.warroom-admin-{secrets.token_hex(8)}"
    port = free_port()
    with throwaway_database() as database_url, open(folder / f"unleash-{port}.log", "wb") as log:
        env = {
            "PATH": os.environ.get("PATH", ""), "HOME": str(folder),
            "DATABASE_URL": database_url, "DATABASE_SSL": "false",
            "HTTP_HOST": "127.0.0.1", "HTTP_PORT": str(port),
            "CHECK_VERSION": "false", "SEND_TELEMETRY": "false", "LOG_LEVEL": "warn",
            "INIT_ADMIN_API_TOKENS": admin_token,
        }
        process = subprocess.Popen(["node", "server.js"], cwd=folder, env=env, stdout=log, stderr=subprocess.STDOUT)
        try:
            url = f"http://127.0.0.1:{port}"
            _wait_healthy(url, process, folder / f"unleash-{port}.log", start_timeout)
            yield Unleash(url=url, admin_token=admin_token)
        finally:
            stop_process(process)


def _wait_healthy(url: str, process: subprocess.Popen[bytes], log: Path, timeout: float) -> None:
    def healthy() -> bool:
        if process.poll() is not None:
            raise RuntimeError(f"Unleash exited with {process.returncode}:\n{log.read_text()[-2000:]}")
        with contextlib.suppress(httpx.HTTPError):
            return bool(httpx.get(f"{url}/health", timeout=2).json().get("health") == "GOOD")
        return False

    try:
        wait_until(healthy, timeout=timeout, interval=0.2, what="Unleash /health")
    except AssertionError as exc:
        raise RuntimeError(f"{exc}:\n{log.read_text()[-2000:]}") from None
