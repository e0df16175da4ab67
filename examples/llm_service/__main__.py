"""``python -m examples.llm_service --host 127.0.0.1 --port 9201 [...]``

The example LLM service as a stand-alone process: it asks itself questions (``--traffic-rps``,
0 for none) so Prometheus always has a rate to judge, and prints what it serves and how to
break and fix it through its control API.
"""

from __future__ import annotations

import argparse
import logging

import uvicorn

from .app import create_app
from .bundles import BUNDLES, DEFAULT_BUNDLE
from .state import ServiceState

# Enough answers per second that a 5-second window (a rehearsal's scaled 5m) holds a ratio.
DEFAULT_TRAFFIC_RPS = 5.0


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m examples.llm_service", description=__doc__)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=9201)
    parser.add_argument("--control-token", help="bearer token the /control API requires")
    parser.add_argument("--warroom-url", help="post traces to <URL>/api/traces")
    parser.add_argument("--warroom-token", help="bearer token for warroom's /api/traces")
    parser.add_argument("--otlp", choices=["protobuf", "json"],
                        help="export OpenTelemetry GenAI spans to <URL>/v1/traces (OTLP/HTTP) instead of /api/traces")
    parser.add_argument("--unleash-url", help="poll Unleash kill switches llm.tool.<tool>")
    parser.add_argument("--unleash-token", help="Unleash client (backend) API token")
    parser.add_argument("--traffic-rps", type=float, default=DEFAULT_TRAFFIC_RPS,
                        help=f"synthetic questions per second (default {DEFAULT_TRAFFIC_RPS:g}; 0: none)")
    parser.add_argument("--bundle", default=DEFAULT_BUNDLE, choices=sorted(BUNDLES))
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    app = create_app(
        ServiceState(bundle=args.bundle),
        control_token=args.control_token,
        warroom_url=args.warroom_url,
        warroom_token=args.warroom_token,
        unleash_url=args.unleash_url,
        unleash_token=args.unleash_token,
        traffic_rps=args.traffic_rps,
        otlp=args.otlp,
    )
    print(banner(f"http://{args.host}:{args.port}", args.bundle, args.traffic_rps, args.control_token), flush=True)
    uvicorn.run(app, host=args.host, port=args.port, log_level="warning")


def banner(url: str, bundle: str, traffic_rps: float, control_token: str | None) -> str:
    """What the service serves and how to drive it, printed on start."""
    auth = ' -H "Authorization: Bearer <control token>"' if control_token else ""
    traffic = f"asking itself {traffic_rps:g} questions/s" if traffic_rps > 0 else "no synthetic traffic"
    known = "known-good" if BUNDLES[bundle].known_good else "not known-good"
    return (
        f"example LLM service on {url}: bundle {bundle} ({known}), {traffic}\n"
        f"  POST {url}/v1/answer  {{\"question\": \"...\"}}   GET {url}/metrics   GET {url}/control/state\n"
        f"  break it: curl -X PUT{auth} -d '{{\"version\": \"v42\"}}' {url}/control/bundle\n"
        f"  fix it:   curl -X PUT{auth} -d '{{\"version\": \"v41\"}}' {url}/control/bundle"
    )


if __name__ == "__main__":
    main()
