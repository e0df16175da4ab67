"""Socket Mode: the same Bolt app over Slack's WebSocket, for teams without a public URL.

Used when ``SLACK_APP_TOKEN`` (``xapp-…``) is set; HTTP mode stays on as well. Bolt's built-in
Socket Mode client ships with slack-sdk, so this adds no dependency.
"""

from __future__ import annotations

import logging
import threading
import time
from typing import TYPE_CHECKING

from bot.errors import ConfigError

if TYPE_CHECKING:
    from slack_bolt.adapter.socket_mode import SocketModeHandler

    from bot.compose import Warroom

log = logging.getLogger(__name__)


def start_socket_mode(warroom: Warroom) -> None:
    """Connect now, so a token Slack refuses stops the start with its error instead of a log line;
    after that, slack-sdk's client reconnects by itself."""
    from slack_bolt.adapter.socket_mode import SocketModeHandler
    from slack_sdk.errors import SlackApiError

    handler = SocketModeHandler(warroom.slack.app, app_token=warroom.settings.slack_app_token)
    warroom.on_stop.append(handler.close)
    try:
        handler.connect()  # apps.connections.open, then the WebSocket; returns once connected
    except SlackApiError as exc:
        raise SocketModeRefused(f"Slack refused SLACK_APP_TOKEN for Socket Mode: {exc.response.get('error')} "
                                "(it must be an app-level xapp- token with connections:write)") from None
    except Exception:
        # Slack unreachable: alert intake must not wait for it. Keep trying in the background.
        log.warning("Socket Mode could not connect; retrying every %d s", RETRY_SECONDS, exc_info=True)
        threading.Thread(target=_connect_until_done, args=(handler,), name="slack-socket-mode", daemon=True).start()
        return
    log.info("Socket Mode connected")


RETRY_SECONDS = 30


def _connect_until_done(handler: SocketModeHandler) -> None:
    while True:
        time.sleep(RETRY_SECONDS)  # back off between attempts at an unreachable Slack
        try:
            handler.connect()
        except Exception:
            log.warning("Socket Mode still cannot connect; next attempt in %d s", RETRY_SECONDS, exc_info=True)
            continue
        log.info("Socket Mode connected")
        return


class SocketModeRefused(ConfigError, RuntimeError):
    """The app-level token was refused: a setting to fix, not something to retry."""
