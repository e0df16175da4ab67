"""Install and run promptfoo (npm) against exported eval cases, fully offline.

promptfoo phones home even with telemetry disabled, so every run gets a scratch HOME, the
documented opt-out variables, and a proxy pointing at a closed loopback port: the only
connections left are to the service under test on 127.0.0.1.

Exceptions::

    PromptfooError      install failed, run crashed, timed out or left no results
"""

from __future__ import annotations

import fcntl
import json
import os
import signal
import subprocess
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bot.errors import ExternalError

PROMPTFOO_VERSION = "0.121.20"  # the last release that runs on Node 20
FAILED_TESTS_EXIT_CODE = 100  # promptfoo's "ran fine, some assertions failed"
INSTALL_TIMEOUT_S = 600
_TAIL_CHARS = 2000


class PromptfooError(ExternalError, RuntimeError):
    """promptfoo could not be installed or did not produce a result."""


@dataclass(frozen=True)
class EvalRunSummary:
    passed: int
    failed: int
    errors: int
    exit_code: int
    results_path: Path
    failures: list[tuple[str, str]] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return self.failed == 0 and self.errors == 0

    def as_text(self, max_failures: int = 5) -> str:
        total = self.passed + self.failed + self.errors
        verdict = "all passed" if self.ok else "regressions found"
        text = f"Eval run: {verdict} — {self.passed}/{total} passed, {self.failed} failed, {self.errors} errored."
        if self.failures:
            shown = "; ".join(f"{desc} ({_one_line(reason)})" for desc, reason in self.failures[:max_failures])
            more = len(self.failures) - max_failures
            text += f" Failing: {shown}" + (f"; … {more} more." if more > 0 else ".")
        return text


def _one_line(text: str, limit: int = 160) -> str:
    flat = " ".join(text.split())
    return flat if len(flat) <= limit else flat[: limit - 1] + "…"


def _tail(text: str) -> str:
    return text[-_TAIL_CHARS:].strip()


def promptfoo_bin(cache_dir: Path) -> Path:
    return Path(cache_dir) / "node_modules" / ".bin" / "promptfoo"


def _installed_version(cache_dir: Path) -> str | None:
    package = Path(cache_dir) / "node_modules" / "promptfoo" / "package.json"
    try:
        return str(json.loads(package.read_text())["version"])
    except (OSError, ValueError, KeyError):
        return None


def ensure_promptfoo(cache_dir: Path = Path(".cache/promptfoo")) -> Path:
    """Path of the promptfoo executable, installing the pinned version into ``cache_dir`` if absent (a minute or so)."""
    cache_dir = Path(cache_dir).resolve()
    cache_dir.mkdir(parents=True, exist_ok=True)
    binary = promptfoo_bin(cache_dir)
    # A file lock, so two test workers or bot replicas never run npm into the same folder at once.
    with open(cache_dir / ".install.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if binary.exists() and _installed_version(cache_dir) == PROMPTFOO_VERSION:
            return binary
        command = ["npm", "install", "--prefix", str(cache_dir), f"promptfoo@{PROMPTFOO_VERSION}", "--no-audit",
                   "--no-fund"]
        try:
            done = subprocess.run(command, capture_output=True, text=True, timeout=INSTALL_TIMEOUT_S)
        except (OSError, subprocess.TimeoutExpired) as exc:
            raise PromptfooError(f"npm install promptfoo failed: {exc}") from exc
        if done.returncode != 0 or not binary.exists():
            raise PromptfooError(f"npm install promptfoo exited {done.returncode}: {_tail(done.stderr)}")
        return binary


def offline_env(scratch: Path) -> dict[str, str]:
    """A clean environment: no inherited API keys, no state outside ``scratch``, no way off loopback."""
    return {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "LANG": "C.UTF-8",
        "NODE_NO_WARNINGS": "1",  # keeps node's experimental-feature notices out of the error tail
        "HOME": str(scratch),
        "PROMPTFOO_CONFIG_DIR": str(scratch / "promptfoo"),
        "PROMPTFOO_DISABLE_TELEMETRY": "1",
        "PROMPTFOO_DISABLE_UPDATE": "1",
        "PROMPTFOO_DISABLE_RUNTIME_WARNINGS": "1",
        "HTTPS_PROXY": "http://127.0.0.1:9",
        "HTTP_PROXY": "http://127.0.0.1:9",
        "NO_PROXY": "127.0.0.1,localhost",
    }


def _failures(rows: list[dict[str, Any]]) -> list[tuple[str, str]]:
    failures = []
    for row in rows:
        if row.get("success"):
            continue
        test = row.get("testCase") or {}
        description = test.get("description") or json.dumps(row.get("vars") or {}, sort_keys=True)
        grading = row.get("gradingResult") or {}
        reason = row.get("error") or grading.get("reason") or "failed"
        failures.append((str(description), str(reason)))
    return failures


def _summary(results_path: Path, exit_code: int) -> EvalRunSummary:
    try:
        report = json.loads(results_path.read_text(encoding="utf-8"))
        results = report["results"]
        stats = results["stats"]
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise PromptfooError(f"promptfoo left no readable results at {results_path}: {exc}") from exc
    return EvalRunSummary(
        passed=int(stats.get("successes", 0)),
        failed=int(stats.get("failures", 0)),
        errors=int(stats.get("errors", 0)),
        exit_code=exit_code,
        results_path=results_path,
        failures=_failures(results.get("results") or []),
    )


def run_promptfoo(
    config_dir: Path,
    *,
    cache_dir: Path = Path(".cache/promptfoo"),
    timeout: float = 180,
    results_path: Path | None = None,
    max_concurrency: int | None = None,
) -> EvalRunSummary:
    """Run ``promptfooconfig.yaml`` in ``config_dir``; failing assertions are a result, anything else raises."""
    config_dir = Path(config_dir).resolve()
    results_path = (results_path or config_dir / "results.json").resolve()
    binary = ensure_promptfoo(cache_dir)
    results_path.unlink(missing_ok=True)  # never mistake an old report for this run's
    command = [
        str(binary), "eval", "-c", "promptfooconfig.yaml", "-o", str(results_path),
        "--no-cache", "--no-table", "--no-progress-bar", "--no-write",
    ]
    if max_concurrency is not None:
        command += ["--max-concurrency", str(max_concurrency)]
    with tempfile.TemporaryDirectory(prefix="warroom-promptfoo-") as scratch:
        proc = subprocess.Popen(
            command, cwd=config_dir, env=offline_env(Path(scratch)), stdout=subprocess.PIPE,
            stderr=subprocess.PIPE, text=True, start_new_session=True,
        )
        try:
            _stdout, stderr = proc.communicate(timeout=timeout)
        except subprocess.TimeoutExpired as exc:
            os.killpg(proc.pid, signal.SIGKILL)  # its own session: takes node's children with it
            proc.communicate()
            raise PromptfooError(f"promptfoo eval timed out after {timeout:g} s") from exc
    if proc.returncode not in (0, FAILED_TESTS_EXIT_CODE):
        raise PromptfooError(f"promptfoo eval exited {proc.returncode}: {_tail(stderr)}")
    return _summary(results_path, proc.returncode)
