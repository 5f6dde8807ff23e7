"""One load-generating client for the ``daemon.ping`` throughput figure (run as ``python -m bench.ping_client``).

It opens one connection, keeps ``--window`` requests in flight (1 = strictly sequential: send, wait for the
reply, send the next), and counts the replies that arrive between ``--start-at`` and ``--end-at`` (readings
of the system-wide monotonic clock, so all clients count the same interval). Replies are counted by line and
checked for errors, not decoded: the client must stay cheap, since it shares the CPUs with the daemon.
Prints one JSON object: ``{"count", "errors", "connectedAt"}``.
"""

from __future__ import annotations

import argparse
import json
import socket
import time


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--socket", required=True)
    parser.add_argument("--start-at", type=float, required=True)
    parser.add_argument("--end-at", type=float, required=True)
    parser.add_argument("--window", type=int, default=1)
    args = parser.parse_args()

    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.settimeout(30)
    sock.connect(args.socket)
    connected_at = time.monotonic()
    template = '{"jsonrpc":"2.0","id":%d,"method":"daemon.ping"}\n'
    next_id = 1

    def requests(n: int) -> bytes:
        nonlocal next_id
        out = "".join(template % i for i in range(next_id, next_id + n)).encode()
        next_id += n
        return out

    # Wait for the common start so that every client's connection exists before anyone measures.
    time.sleep(max(0.0, args.start_at - 0.2 - time.monotonic()))
    count = errors = 0
    sock.sendall(requests(args.window))
    tail = b""
    while True:
        data = sock.recv(1 << 16)
        if not data:
            raise SystemExit("actantd closed the connection")
        now = time.monotonic()
        data = tail + data
        replies = data.count(b"\n")
        if not replies:
            tail = data
            continue
        cut = data.rfind(b"\n") + 1
        tail = data[cut:]
        if b'"error"' in data[:cut]:
            errors += data[:cut].count(b'"error"')
        if args.start_at <= now < args.end_at:
            count += replies
        if now >= args.end_at:
            break
        sock.sendall(requests(replies))
    sock.close()
    print(json.dumps({"count": count, "errors": errors, "connectedAt": connected_at}))


if __name__ == "__main__":
    main()
