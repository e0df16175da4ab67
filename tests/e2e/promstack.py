"""A real Prometheus + Alertmanager pair on loopback for end-to-end tests.

Both run from the Debian packages (``prometheus``, ``prometheus-alertmanager``) with every file in
the test's tmp dir, fast timings (scrape/eval 1 s, group_wait/interval 1 s) and
``--web.external-url`` so payload URLs are stable. Each process is stopped by its own PID.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path
from types import TracebackType
from typing import Any

import httpx
import yaml

from bot.serving import free_port, stop_process, wait_until

GROUP_BY = ["alertname", "sloth_service", "sloth_slo", "sloth_severity"]
_INSTALL_HINT = (".ci/run installs prometheus prometheus-alertmanager "
                 "(apt-get install prometheus prometheus-alertmanager)")


class PromStackError(RuntimeError):
    """A binary is missing, a config is rejected, or a server never became ready."""


class PromStack:
    def __init__(
        self,
        tmp_path: Path,
        scrape_targets: list[str],
        rules_yaml: str,
        webhook_url: str,
        webhook_token: str | None = None,
    ) -> None:
        self.dir = Path(tmp_path) / "promstack"
        self.scrape_targets = scrape_targets
        self.rules_yaml = rules_yaml
        self.webhook_url = webhook_url
        self.webhook_token = webhook_token
        self.prometheus_url = ""
        self.alertmanager_url = ""
        self._procs: list[subprocess.Popen[bytes]] = []
        self._http = httpx.Client(timeout=5.0)

    # -- lifecycle -------------------------------------------------------------------------
    def __enter__(self) -> PromStack:
        self.start()
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.stop()

    def start(self) -> None:
        binaries = {name: shutil.which(name) for name in ("prometheus", "prometheus-alertmanager", "promtool",
                                                          "amtool")}
        missing = [name for name, found in binaries.items() if not found]
        if missing:
            raise PromStackError(f"missing {', '.join(missing)} on PATH; {_INSTALL_HINT}")
        self.dir.mkdir(parents=True, exist_ok=True)
        am_port, prom_port = free_port(), free_port()
        self.alertmanager_url = f"http://127.0.0.1:{am_port}"
        self.prometheus_url = f"http://127.0.0.1:{prom_port}"
        am_config, prom_config = self._write_configs(am_port)
        self._check([str(binaries["promtool"]), "check", "config", str(prom_config)])
        self._check([str(binaries["amtool"]), "check-config", str(am_config)])
        self._spawn("alertmanager", [
            str(binaries["prometheus-alertmanager"]), f"--config.file={am_config}",
            f"--storage.path={self.dir / 'am-data'}", f"--web.listen-address=127.0.0.1:{am_port}",
            f"--web.external-url={self.alertmanager_url}", "--cluster.listen-address=",
        ], self.alertmanager_url)
        self._spawn("prometheus", [
            str(binaries["prometheus"]), f"--config.file={prom_config}",
            f"--storage.tsdb.path={self.dir / 'prom-data'}", f"--web.listen-address=127.0.0.1:{prom_port}",
            f"--web.external-url={self.prometheus_url}",
        ], self.prometheus_url)

    def stop(self) -> None:
        for proc in reversed(self._procs):
            stop_process(proc, timeout=10)
        self._procs.clear()
        self._http.close()

    # -- queries ---------------------------------------------------------------------------
    def query(self, expr: str) -> list[dict[str, Any]]:
        """An instant PromQL query: the ``result`` vector (``[{metric, value}]``)."""
        response = self._http.get(f"{self.prometheus_url}/api/v1/query", params={"query": expr})
        response.raise_for_status()
        return list(response.json()["data"]["result"])

    def prometheus_alerts(self, alertname: str | None = None) -> list[dict[str, str]]:
        """Label sets of the ``ALERTS`` series (pending and firing, ``alertstate`` included)."""
        expr = f'ALERTS{{alertname="{alertname}"}}' if alertname else "ALERTS"
        return [item["metric"] for item in self.query(expr)]

    def alertmanager_alerts(self) -> list[dict[str, Any]]:
        """Alertmanager's current alerts (``GET /api/v2/alerts``)."""
        response = self._http.get(f"{self.alertmanager_url}/api/v2/alerts")
        response.raise_for_status()
        return list(response.json())

    def rules_health(self) -> list[tuple[str, str, str]]:
        """``(rule name, health, lastError)`` of every loaded rule, to spot a bad expression."""
        response = self._http.get(f"{self.prometheus_url}/api/v1/rules")
        response.raise_for_status()
        return [(rule["name"], rule["health"], rule.get("lastError", ""))
                for group in response.json()["data"]["groups"] for rule in group["rules"]]

    # -- internals -------------------------------------------------------------------------
    def _write_configs(self, am_port: int) -> tuple[Path, Path]:
        rules = self.dir / "rules.yml"
        rules.write_text(self.rules_yaml, encoding="utf-8")
        prometheus = {
            "global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
            "rule_files": [str(rules)],
            "alerting": {"alertmanagers": [{"static_configs": [{"targets": [f"127.0.0.1:{am_port}"]}]}]},
            "scrape_configs": [{"job_name": "app", "static_configs": [{"targets": self.scrape_targets}]}],
        }
        webhook: dict[str, Any] = {"url": self.webhook_url, "send_resolved": True}
        if self.webhook_token:
            webhook["http_config"] = {"authorization": {"type": "Bearer", "credentials": self.webhook_token}}
        alertmanager = {
            "route": {"receiver": "warroom", "group_by": GROUP_BY, "group_wait": "1s",
                      "group_interval": "1s", "repeat_interval": "1h"},
            "receivers": [{"name": "warroom", "webhook_configs": [webhook]}],
        }
        prom_path, am_path = self.dir / "prometheus.yml", self.dir / "alertmanager.yml"
        prom_path.write_text(yaml.safe_dump(prometheus, sort_keys=False), encoding="utf-8")
        am_path.write_text(yaml.safe_dump(alertmanager, sort_keys=False), encoding="utf-8")
        return am_path, prom_path

    def _check(self, argv: list[str]) -> None:
        result = subprocess.run(argv, capture_output=True, text=True, timeout=60)
        if result.returncode != 0:
            raise PromStackError(f"{' '.join(argv)} failed:\n{result.stdout}{result.stderr}")

    def _spawn(self, name: str, argv: list[str], url: str) -> None:
        log = (self.dir / f"{name}.log").open("wb")
        proc = subprocess.Popen(argv, cwd=self.dir, stdout=log, stderr=subprocess.STDOUT)
        log.close()
        self._procs.append(proc)

        def ready() -> bool:
            if proc.poll() is not None:
                tail = (self.dir / f"{name}.log").read_text(errors="replace")[-2000:]
                raise PromStackError(f"{name} exited with {proc.returncode}:\n{tail}")
            try:
                return self._http.get(f"{url}/-/ready").status_code == 200
            except httpx.TransportError:
                return False

        try:
            wait_until(ready, timeout=30, what=f"{name} /-/ready", interval=0.1)
        except BaseException:
            self.stop()
            raise
