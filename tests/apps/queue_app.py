"""A one-threaded HTTP/1.1 server whose latency really grows with the arrival rate.

Every ``GET /work`` burns ``--cpu-ms`` of CPU on the one event-loop thread, so requests
are served one after another: below ``1000 / cpu_ms`` req/s they barely wait, above it
a queue builds up and the latency grows with every second of the run (a real M/D/1-like
queue, no sleeps). ``GET /health`` answers at once. ``--exit-after N`` ends the process
abruptly after N ``/work`` requests (a target that crashes under load).

Run: ``python tests/apps/queue_app.py --port 8000 --cpu-ms 4``.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import time

BODY = b"ok\n"
RESPONSE = (
    b"HTTP/1.1 200 OK\r\ncontent-type: text/plain\r\ncontent-length: "
    + str(len(BODY)).encode()
    + b"\r\n\r\n"
    + BODY
)


def burn(seconds: float) -> int:
    deadline = time.perf_counter() + seconds
    n = 0
    while time.perf_counter() < deadline:
        n += 1
    return n


class Server:
    def __init__(self, cpu_s: float, exit_after: int | None) -> None:
        self.cpu_s = cpu_s
        self.exit_after = exit_after
        self.served = 0

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                line, *headers = head.decode("latin-1").split("\r\n")
                length = 0
                for h in headers:
                    name, _, value = h.partition(":")
                    if name.strip().lower() == "content-length":
                        length = int(value.strip())
                if length:
                    await reader.readexactly(length)
                path = line.split(" ")[1] if " " in line else "/"
                if path.startswith("/work"):
                    burn(self.cpu_s)
                    self.served += 1
                    if self.exit_after is not None and self.served >= self.exit_after:
                        os._exit(3)
                writer.write(RESPONSE)
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()


async def main(port: int, cpu_ms: float, exit_after: int | None) -> None:
    app = Server(cpu_ms / 1000.0, exit_after)
    server = await asyncio.start_server(app.handle, "127.0.0.1", port, backlog=1024)
    async with server:
        await server.serve_forever()


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--cpu-ms", type=float, default=4.0)
    parser.add_argument("--exit-after", type=int, default=None)
    args = parser.parse_args()
    asyncio.run(main(args.port, args.cpu_ms, args.exit_after))
