"""phase3 vs optimized on the webhook → reply flow, in one run, interleaved.

For each variant (fresh stack per round, rounds interleaved to spread machine noise):
post text messages to the webhook at a fixed rate, wait until every reply reached the
Telegram stand-in, and measure
  - webhook acknowledgement latency (client side, p50/p95/p99),
  - webhook → reply latency (end to end, stand-in receive time),
  - new upstream TCP connections per message (the stand-ins count them),
  - new Redis connections per message (INFO total_connections_received),
  - service + worker CPU milliseconds per message.
Prints the figures per variant and optimized/phase3 ratios.

    .venv/bin/python benchmarks/bench_webhook_flow.py [--messages 200] [--rate 20] [--rounds 2]
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx
import psutil
import redis

from perfaudit.refservice import switches as sw
from perfaudit.stack.client import StackClient, text_update
from perfaudit.stack.stack import Stack, StackInfo, StackOptions

# Realistic upstream latencies, but cursor-runner calls back after 0.3 s so a round is short.
STANDINS: dict[str, Any] = {"callback_delay_ms": 300, "callback_jitter_ms": 200, "seed": 7}


def pct(values: list[float], p: float) -> float:
    if not values:
        return float("nan")
    s = sorted(values)
    return s[min(len(s) - 1, int(round(p / 100 * (len(s) - 1))))]


def cpu_seconds(pids: list[int]) -> float:
    total = 0.0
    for pid in pids:
        t = psutil.Process(pid).cpu_times()
        total += t.user + t.system
    return total


async def post_all(
    info: StackInfo, updates: list[dict[str, Any]], rate: float
) -> list[tuple[float, float]]:
    """(send wall time, ack ms) per update, sent on an open schedule."""
    headers = {"X-Telegram-Bot-Api-Secret-Token": info.secrets.telegram_webhook_secret}
    url = f"{info.service_url}/telegram/webhook"
    out: list[tuple[float, float]] = [(0.0, 0.0)] * len(updates)
    limits = httpx.Limits(max_connections=64, max_keepalive_connections=64)
    async with httpx.AsyncClient(limits=limits, timeout=30) as http:
        start = time.perf_counter()

        async def one(i: int, update: dict[str, Any]) -> None:
            await asyncio.sleep(max(0.0, start + i / rate - time.perf_counter()))
            sent_wall = time.time()
            t0 = time.perf_counter()
            r = await http.post(url, json=update, headers=headers)
            r.raise_for_status()
            out[i] = (sent_wall, (time.perf_counter() - t0) * 1000)

        await asyncio.gather(*(one(i, u) for i, u in enumerate(updates)))
    return out


def run_round(variant: str, messages: int, rate: float, base: Path) -> dict[str, float]:
    run_dir = Path(tempfile.mkdtemp(prefix=f"{variant}-", dir=base))
    options = StackOptions(run_dir=run_dir, switches=sw.VARIANTS[variant], standin_config=STANDINS)
    with Stack(options) as info, StackClient(info, timeout=30) as client:
        r = redis.Redis.from_url(info.redis_url)
        warm = [text_update(f"warm-up {i}", chat_id=10_000_000 + i) for i in range(10)]
        asyncio.run(post_all(info, warm, rate))
        client.wait_for("cursor.callback", count=len(warm), timeout=30)
        time.sleep(1.0)

        pids = [info.pids["service"], info.pids["worker"]]
        chats = [20_000_000 + i for i in range(messages)]
        updates = [text_update(f"bench message {c}", chat_id=c) for c in chats]
        client.reset()
        redis_conn0 = int(r.info("stats")["total_connections_received"])
        cpu0 = cpu_seconds(pids)
        sent = asyncio.run(post_all(info, updates, rate))

        def is_reply(c: dict[str, Any]) -> bool:
            return "completed successfully" in str((c.get("json") or {}).get("text", ""))

        replies = client.wait_for("telegram.sendMessage", is_reply, count=messages, timeout=120)
        cpu = cpu_seconds(pids) - cpu0
        redis_conns = int(r.info("stats")["total_connections_received"]) - redis_conn0 - 1
        stats = client.stats()
        r.close()

    first_reply: dict[int, float] = {}
    for c in replies:
        chat = int(c["json"]["chat_id"])
        first_reply.setdefault(chat, c["ts"])
    e2e = [(first_reply[c] - sent[i][0]) * 1000 for i, c in enumerate(chats) if c in first_reply]
    acks = [a for _, a in sent]
    upstream_new = sum(v["new"] for v in stats["connections"].values())
    return {
        "ack_p50": pct(acks, 50), "ack_p95": pct(acks, 95), "ack_p99": pct(acks, 99),
        "e2e_p50": pct(e2e, 50), "e2e_p95": pct(e2e, 95),
        "replied": len(e2e) / messages,
        "upstream_conns_per_msg": upstream_new / messages,
        "redis_conns_per_msg": redis_conns / messages,
        "cpu_ms_per_msg": cpu * 1000 / messages,
    }  # fmt: skip


METRICS = [
    ("ack_p50", "webhook ack p50 ms"),
    ("ack_p95", "webhook ack p95 ms"),
    ("ack_p99", "webhook ack p99 ms"),
    ("e2e_p50", "webhook → reply p50 ms"),
    ("e2e_p95", "webhook → reply p95 ms"),
    ("upstream_conns_per_msg", "new upstream TCP conns / msg"),
    ("redis_conns_per_msg", "new Redis conns / msg"),
    ("cpu_ms_per_msg", "service+worker CPU ms / msg"),
    ("replied", "fraction replied"),
]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--messages", type=int, default=200)
    ap.add_argument("--rate", type=float, default=20.0, help="messages per second")
    ap.add_argument("--rounds", type=int, default=2)
    args = ap.parse_args()
    results: dict[str, list[dict[str, float]]] = {"phase3": [], "optimized": []}
    with tempfile.TemporaryDirectory(prefix="bench-flow-") as tmp:
        for rnd in range(args.rounds):
            order = ["phase3", "optimized"] if rnd % 2 == 0 else ["optimized", "phase3"]
            for variant in order:
                print(f"round {rnd + 1}: {variant} ...", flush=True)
                results[variant].append(run_round(variant, args.messages, args.rate, Path(tmp)))

    def mean(variant: str, key: str) -> float:
        return statistics.fmean(r[key] for r in results[variant])

    print(f"\n{args.messages} text messages at {args.rate:g}/s, {args.rounds} interleaved rounds "
          "per variant (means of rounds)\n")  # fmt: skip
    print(f"{'metric':34} {'phase3':>10} {'optimized':>10} {'opt/phase3':>11}")
    for key, label in METRICS:
        p, o = mean("phase3", key), mean("optimized", key)
        ratio = o / p if p else float("nan")
        print(f"{label:34} {p:10.2f} {o:10.2f} {ratio:11.2f}")


if __name__ == "__main__":
    main()
