"""``POST /slack/events`` bounds the body before anything else, signature check included.

A raw socket plays the sender, so the test sees how much of a body the server took before it
answered: an unauthenticated sender must not make warroom read (and hold) half a gigabyte.
"""

from __future__ import annotations

import select
import socket
from urllib.parse import urlsplit

from tests.conftest import Warroom

LIMIT = 1024 * 1024  # WARROOM_MAX_BODY_BYTES' default
HUGE = 512 * 1024 * 1024


def _connect(url: str) -> tuple[socket.socket, str]:
    parts = urlsplit(url)
    sock = socket.create_connection((parts.hostname, parts.port), timeout=10)
    return sock, f"{parts.hostname}:{parts.port}"


def _read_status(sock: socket.socket) -> str:
    data = b""
    while b"\r\n" not in data:
        chunk = sock.recv(4096)
        if not chunk:
            break
        data += chunk
    return data.split(b"\r\n", 1)[0].decode()


def test_a_declared_huge_body_is_refused_before_it_is_sent(warroom: Warroom) -> None:
    sock, host = _connect(warroom.url)
    with sock:
        sock.sendall((f"POST /slack/events HTTP/1.1\r\nHost: {host}\r\nContent-Type: application/x-www-form-urlencoded"
                      f"\r\nContent-Length: {HUGE}\r\n\r\n").encode())
        sock.settimeout(5)  # the server must answer without waiting for the body
        assert _read_status(sock) == "HTTP/1.1 413 Request Entity Too Large"


def test_a_huge_streamed_body_is_cut_at_the_limit_not_read_whole(warroom: Warroom) -> None:
    """No Content-Length, no signature: chunks until the server answers, which it must do early."""
    sock, host = _connect(warroom.url)
    chunk = 64 * 1024
    piece = b"%x\r\n" % chunk + b"a" * chunk + b"\r\n"
    sent, answered = 0, False
    with sock:
        sock.sendall((f"POST /slack/events HTTP/1.1\r\nHost: {host}\r\nContent-Type: application/x-www-form-urlencoded"
                      "\r\nTransfer-Encoding: chunked\r\n\r\n").encode())
        while sent < HUGE:
            readable, _, _ = select.select([sock], [], [], 0)
            if readable:
                answered = True
                break
            try:
                sock.sendall(piece)
            except OSError:  # the server closed the connection after answering: stop sending, read the answer
                answered = True
                break
            sent += chunk
        assert answered, "warroom read the whole 512 MiB before answering"
        status = _read_status(sock)
    assert status == "HTTP/1.1 413 Request Entity Too Large"
    # What the server took is the limit plus what the kernel's socket buffers held, not the body.
    assert sent < 64 * 1024 * 1024, sent
    assert warroom.http.get("/healthz").status_code == 200
