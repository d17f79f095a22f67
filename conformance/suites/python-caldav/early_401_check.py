"""Deterministic check of what python-caldav's default login does on every new connection.

    early_401_check.py BASE_URL USER PASSWORD RESULTS_FILE

Like the library (DAVClient without auth_type), it sends a PROPFIND with a body and without
credentials, expects 401, and sends the authenticated PROPFIND on the same keep-alive connection.
The body follows the headers in a second TCP segment 300 ms later, as when a client streams
it, so the server has answered 401 before the body arrives (whatever its speed). RFC 9112 §9.3: HTTP/1.1 connections are
persistent unless "close" is signalled (an HTTP/1.0 response without keep-alive is not); §9.6: "A sender SHOULD send a Connection header field
... containing the 'close' connection option when it intends to close a connection." So the check
passes when the 401 carries `Connection: close`, or when the connection stays usable and answers
the authenticated request; it fails when the server closes it silently, because a client that
reuses the connection (as niquests does) then races the close and gets "Remote end closed
connection without response" on a request it never knows whether the server saw.

Appends `PASS|FAIL http::early-401-keeps-connection-or-says-close ...` to RESULTS_FILE; a server
that does not answer 401 without credentials (Xandikos here) gets a SKIP line on stdout instead.
Exit status: 0 pass or skip, 1 fail, 2 the check could not run.
"""

import base64
import socket
import sys
import time
from urllib.parse import urlsplit

CHECK_ID = "http::early-401-keeps-connection-or-says-close"
ROUNDS = 3
BODY_DELAY = 0.3  # seconds between the request head and its body
BODY = (
    b'<?xml version="1.0" encoding="utf-8"?>'
    b'<propfind xmlns="DAV:"><prop><current-user-principal/></prop></propfind>'
)


def read_response(sock, deadline):
    """Reads one response (Content-Length framed). Returns (status, headers, closed) or None on EOF."""
    buf = b""
    while b"\r\n\r\n" not in buf:
        sock.settimeout(max(0.01, deadline - time.monotonic()))
        chunk = sock.recv(65536)
        if not chunk:
            return None
        buf += chunk
    head, rest = buf.split(b"\r\n\r\n", 1)
    lines = head.decode("latin-1").split("\r\n")
    version, status = lines[0].split()[0], int(lines[0].split()[1])
    headers = {}
    for line in lines[1:]:
        k, _, v = line.partition(":")
        headers.setdefault(k.strip().lower(), []).append(v.strip())
    length = int(headers.get("content-length", ["0"])[0])
    while len(rest) < length:
        sock.settimeout(max(0.01, deadline - time.monotonic()))
        chunk = sock.recv(65536)
        if not chunk:
            break
        rest += chunk
    return status, headers, version


def one_round(host, port, path, auth):
    head = (
        f"PROPFIND {path} HTTP/1.1\r\nHost: {host}:{port}\r\nDepth: 0\r\n"
        f"Content-Type: application/xml; charset=utf-8\r\nContent-Length: {len(BODY)}\r\n"
    ).encode()
    with socket.create_connection((host, port), timeout=5) as s:
        s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        s.sendall(head + b"\r\n")
        time.sleep(BODY_DELAY)
        s.sendall(BODY)
        first = read_response(s, time.monotonic() + 5)
        if first is None:
            return "fail", "the server closed the connection without answering the first request"
        status, headers, version = first
        if status != 401:
            return "skip", f"PROPFIND without credentials got {status}, not 401"
        tokens = [t.strip() for t in ",".join(headers.get("connection", [])).lower().split(",")]
        if "close" in tokens:
            return "pass", "401 with Connection: close"
        if version == "HTTP/1.0" and "keep-alive" not in tokens:
            return "pass", "HTTP/1.0 response without keep-alive: not a persistent connection"
        time.sleep(0.2)  # let a silent close reach us, so the outcome does not depend on timing
        try:
            s.sendall(head + f"Authorization: Basic {auth}\r\n\r\n".encode() + BODY)
            second = read_response(s, time.monotonic() + 5)
        except OSError as e:
            second = None
            why = f"{type(e).__name__}: {e}"
        else:
            why = "EOF"
        if second is None:
            return "fail", (
                "401 sent before the request body was read, without Connection: close, then the "
                f"connection was closed: the authenticated retry on it got {why}"
            )
        return "pass", f"connection kept; the authenticated retry got {second[0]}"


def main():
    url, user, password, results = sys.argv[1:5]
    u = urlsplit(url)
    host, port, path = u.hostname, u.port or 80, u.path or "/"
    auth = base64.b64encode(f"{user}:{password}".encode()).decode()
    outcomes = []
    try:
        for _ in range(ROUNDS):
            outcomes.append(one_round(host, port, path, auth))
    except OSError as e:
        print(f"{CHECK_ID}: could not run: {e}", file=sys.stderr)
        return 2
    if all(o[0] == "skip" for o in outcomes):
        print(f"SKIP {CHECK_ID}  {outcomes[0][1]}")
        return 0
    fails = [o for o in outcomes if o[0] != "pass"]
    with open(results, "a") as f:
        if fails:
            f.write(f"FAIL {CHECK_ID} {len(fails)}/{ROUNDS} rounds: {fails[0][1]}\n")
        else:
            f.write(f"PASS {CHECK_ID}\n")
    for i, (verdict, why) in enumerate(outcomes, 1):
        print(f"{CHECK_ID}: round {i}: {verdict}: {why}")
    return 1 if fails else 0


if __name__ == "__main__":
    sys.exit(main())
