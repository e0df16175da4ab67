"""Run an ASGI app with uvicorn in a background thread, wait on a condition with a deadline, stop
a child process: what the demo, the tests and the benchmarks share; and what a serving process
does once it has started (`freeze_startup_objects`)."""

from __future__ import annotations

import gc
import socket
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, TypeVar

import uvicorn


def freeze_startup_objects() -> None:
    """Take what start-up left alive (modules, settings, runbooks, compiled statements) out of the
    garbage collector's sight, so a full collection scans only what requests made since.

    A full collection of a started warroom walks every object of its imports, and every request
    in flight waits for it (the stalls it caused are measured in bench/README.md, "Intake").
    Call it once, just before serving.
    """
    gc.collect()
    gc.freeze()


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket() as s:
        s.bind((host, 0))
        return s.getsockname()[1]


def port_is_free(port: int, host: str = "127.0.0.1") -> bool:
    with socket.socket() as s:
        try:
            s.bind((host, port))
        except OSError:
            return False
        return True


class ServerThread:
    def __init__(self, app: Any, port: int | None = None, host: str = "127.0.0.1") -> None:
        self.host = host
        self.port = port or free_port(host)
        config = uvicorn.Config(app, host=host, port=self.port, log_level="warning", lifespan="on")
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def start(self, timeout: float = 15) -> ServerThread:
        self.thread.start()

        def started() -> bool:
            if not self.thread.is_alive():
                raise RuntimeError(f"server on {self.url} exited on start")
            return bool(self.server.started)

        wait_until(started, timeout=timeout, what=f"the server on {self.url} to start")
        return self

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=10)


@contextmanager
def serving(app: Any) -> Iterator[str]:
    """``with serving(app) as url:`` — the app on a free loopback port for the block's duration."""
    server = ServerThread(app).start()
    try:
        yield server.url
    finally:
        server.stop()


T = TypeVar("T")


def stop_process(process: subprocess.Popen[bytes], timeout: float = 15) -> None:
    """SIGTERM, then SIGKILL if it has not exited after ``timeout`` s (a server we started)."""
    process.terminate()
    try:
        process.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


def wait_until(condition: Callable[[], T], *, timeout: float = 10.0, interval: float = 0.02,
               what: str = "condition") -> T:
    """Poll ``condition`` until it is truthy; AssertionError naming ``what`` after ``timeout`` s."""
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(interval)
