"""``python -m examples.llm_service --host 127.0.0.1 --port 9201 [...]``"""

from __future__ import annotations

import argparse
import logging

import uvicorn

from .app import create_app
from .bundles import BUNDLES, DEFAULT_BUNDLE
from .state import ServiceState


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
    parser.add_argument("--traffic-rps", type=float, default=0, help="synthetic questions per second")
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
    uvicorn.run(app, host=args.host, port=args.port, log_level="warning")


if __name__ == "__main__":
    main()
