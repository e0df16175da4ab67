"""Wall time from a fresh clone to the first incident, following the README's rehearsal as written.

    .venv/bin/python bench/time_to_value.py                 # clone, install, configure, start, break
    .venv/bin/python bench/time_to_value.py --keep          # keep the clone's folder to look at

Clones this repository's committed HEAD into a temporary folder, then pastes the README's
"Use it with your service" steps (install, configure, start, break) into one shell there and polls
the README's own "see" command until warroom shows the first incident; then the "fix" step and the
poll again until that incident is resolved. Prints the time of each step and the totals. Real
Prometheus and Alertmanager (Debian packages) must be on PATH. The README's ports are replaced by
free ones (see tests/e2e/readme_walk.py), so a demo running on this machine is not disturbed.
Target: first incident in under 3 minutes of machine time.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bot.serving import wait_until
from tests.e2e.readme_walk import Shell, free_ports, readme_steps, with_ports


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--keep", action="store_true", help="keep the clone's folder")
    args = parser.parse_args()
    folder = Path(tempfile.mkdtemp(prefix="warroom-ttv-"))
    clone = folder / "warroom"
    branch = subprocess.run(["git", "-C", str(ROOT), "rev-parse", "--abbrev-ref", "HEAD"], capture_output=True,
                            text=True, check=True).stdout.strip()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("WARROOM_", "SLACK_", "VIRTUAL_ENV", "PYTHONPATH"))}
    timings: list[tuple[str, float]] = []
    started = time.monotonic()
    shell: Shell | None = None
    try:
        subprocess.run(["git", "clone", "--quiet", "--branch", branch, str(ROOT), str(clone)], check=True)
        timings.append(("git clone", time.monotonic() - started))
        ports = free_ports()
        steps = {name: with_ports(text, ports) for name, text in readme_steps(clone / "README.md").items()}
        shell = Shell(clone, env)
        for name, timeout in (("install", 600), ("configure", 120), ("start", 120), ("break", 30)):
            began = time.monotonic()
            shell.run(steps[name], timeout=timeout)
            timings.append((name, time.monotonic() - began))

        def see() -> list[dict]:
            assert shell is not None
            out = shell.run(steps["see"], timeout=30)
            try:
                return list(json.loads(out))
            except ValueError:
                raise SystemExit(f"the README's 'see' step did not print incidents:\n{out}") from None

        began = time.monotonic()
        first = wait_until(lambda: next((i for i in see() if i["labels"].get("sloth_severity") == "page"), None),
                           timeout=300, interval=1, what="the first page incident")
        assert first is not None  # wait_until returns what the condition found, or raises
        timings.append((f"break -> incident #{first['id']} ({first['slo']}, page)", time.monotonic() - began))
        to_first = time.monotonic() - started
        began = time.monotonic()
        shell.run(steps["fix"], timeout=30)
        wait_until(lambda: any(i["id"] == first["id"] and i["status"] == "resolved" for i in see()),
                   timeout=300, interval=1, what="the incident to resolve")
        timings.append(("fix -> resolved", time.monotonic() - began))
        shell.run(steps["stop"], timeout=30)
    finally:
        if shell is not None:
            shell.stop()
        if not args.keep:
            shutil.rmtree(folder, ignore_errors=True)
    for name, seconds in timings:
        print(f"{name:<55} {seconds:7.1f} s")
    print(f"{'fresh clone -> first incident':<55} {to_first:7.1f} s  (target < 180 s)")
    print(f"{'fresh clone -> resolved':<55} {time.monotonic() - started:7.1f} s")
    return 0 if to_first < 180 else 1


if __name__ == "__main__":
    raise SystemExit(main())
