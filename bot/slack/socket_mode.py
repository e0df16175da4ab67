"""Socket Mode: the same Bolt app over Slack's WebSocket, for teams without a public URL.

Used when ``SLACK_APP_TOKEN`` (``xapp-…``) is set; HTTP mode stays on as well. Bolt's built-in
Socket Mode client ships with slack-sdk, so this adds no dependency.
"""

from __future__ import annotations

import logging
import threading

from bot.runtime import Runtime

log = logging.getLogger(__name__)


def start_socket_mode(runtime: Runtime) -> None:
    from slack_bolt.adapter.socket_mode import SocketModeHandler

    slack = runtime.services["slack"]
    handler = SocketModeHandler(slack.app, app_token=runtime.settings.slack_app_token)
    runtime.services.setdefault("on_stop", []).append(handler.close)
    threading.Thread(target=handler.connect, name="slack-socket-mode", daemon=True).start()
    log.info("Socket Mode connecting")
