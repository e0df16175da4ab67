"""A named daemon thread with a stop event: the shape of the service's three background loops."""

from __future__ import annotations

import threading


class BackgroundLoop:
    """Subclasses implement ``_loop`` and wait on ``self._stop`` between rounds."""

    def __init__(self, name: str) -> None:
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name=name, daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout=5)

    def _loop(self) -> None:
        raise NotImplementedError
