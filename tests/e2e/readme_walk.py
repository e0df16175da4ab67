"""The README's "Use it with your service" rehearsal, taken from the README itself and run in a shell.

Each step is a fenced ``sh`` block preceded by ``<!-- walk: NAME -->``. The steps run in order in
one long-lived ``bash``, as a person pasting them into one terminal would (exports and background
jobs carry over). Used by the end-to-end test and by ``bench/time_to_value.py``.

The only change made to the text is the ports: the README's fixed ones (warroom 8080, the emulator
3000, the example service 9201, Prometheus 9090, Alertmanager 9093) become free ones, so a run
does not collide with a demo or another test on this machine.
"""

from __future__ import annotations

import os
import queue
import re
import signal
import subprocess
import threading
import time
import uuid
from collections.abc import Mapping
from pathlib import Path

from bot.serving import free_port

README_PORTS = {"warroom": 8080, "emulator": 3000, "service": 9201, "prometheus": 9090, "alertmanager": 9093}
_STEP = re.compile(r"<!-- walk: (?P<name>[a-z-]+) -->\s*\n```sh\n(?P<body>.*?)\n```", re.S)


class WalkError(AssertionError):
    """A step failed or did not finish before its deadline."""


def readme_steps(readme: Path) -> dict[str, str]:
    """``{step name: shell text}`` in README order."""
    steps = {m["name"]: m["body"] for m in _STEP.finditer(readme.read_text(encoding="utf-8"))}
    if not steps:
        raise WalkError(f"no <!-- walk: NAME --> steps in {readme}")
    return steps


def free_ports() -> dict[str, int]:
    return {name: free_port() for name in README_PORTS}


def with_ports(text: str, ports: Mapping[str, int]) -> str:
    mapping = {str(README_PORTS[name]): str(port) for name, port in ports.items()}
    return re.sub(r"(?<![\d.])(" + "|".join(mapping) + r")(?!\d)", lambda m: mapping[m.group(1)], text)


class Shell:
    """One ``bash`` reading steps from stdin; its own session, so stopping it stops its jobs too."""

    def __init__(self, cwd: Path, env: Mapping[str, str]) -> None:
        self.proc = subprocess.Popen(["bash", "--noprofile", "--norc"], cwd=cwd, env=dict(env),
                                     stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                     text=True, start_new_session=True)
        self.lines: queue.Queue[str] = queue.Queue()
        self.transcript: list[str] = []
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.lines.put(line)

    def run(self, text: str, *, timeout: float) -> str:
        """Paste ``text``; its output once every command in it has returned (exit status must be 0)."""
        assert self.proc.stdin is not None
        marker = f"__walk_{uuid.uuid4().hex}__"
        # The status is read before the newline echo (which would reset $?); the newline ends a last
        # line that has none (curl's JSON), so the marker starts a line of its own.
        self.proc.stdin.write(f"{text}\n__walk_status=$?; echo; echo {marker} $__walk_status\n")
        self.proc.stdin.flush()
        out: list[str] = []
        deadline = time.monotonic() + timeout
        while True:
            try:
                line = self.lines.get(timeout=max(0.0, deadline - time.monotonic()))
            except queue.Empty:
                raise WalkError(f"step did not finish within {timeout}s:\n{text}\n"
                                f"output so far:\n{''.join(out)}") from None
            if line.startswith(marker):
                status = int(line.split()[1])
                self.transcript.append(f"$ {text}\n{''.join(out)}")
                if status != 0:
                    raise WalkError(f"step exited with {status}:\n{text}\noutput:\n{''.join(out)}")
                return "".join(out)
            out.append(line)

    def stop(self) -> None:
        """End the shell and every job it started (they share its process group)."""
        try:
            os.killpg(self.proc.pid, signal.SIGTERM)
        except ProcessLookupError:
            return
        try:
            self.proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait()
