"""End-to-end tests of the upstream stand-ins: a real process, real HTTP over 127.0.0.1."""

from __future__ import annotations

import json
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import pytest

from perfaudit.upstreams import (
    CONFIGURABLE_ROUTES,
    DEFAULT_ROUTES,
    TELEGRAM_ROUTES,
    StandinConfig,
    fast_patch,
)

TOKEN = "123456:TEST-token"
EL_KEY = "el-test-key"
SECRET = "cb-secret"
REPO_ROOT = Path(__file__).resolve().parents[1]

# Reapplied before every test so tests can tweak config freely.
BASE_PATCH: dict[str, Any] = {
    "seed": 1,
    "routes": {
        "*": {
            "latency_ms": 0,
            "jitter_ms": 0,
            "error_rate": 0,
            "error_status": 500,
            "timeout_rate": 0,
            "timeout_ms": 65000,
        },
        "telegram.fileDownload": {"response_bytes": 49152},
        "elevenlabs.tts": {"response_bytes": 32768},
        "cursor.*": {"response_bytes": None},
    },
    "callback_delay_ms": 0,
    "callback_jitter_ms": 0,
    "callback_failure_rate": 0,
    "callback_output": "Created README.md\n",
    "transcript": "Add a README to the repo",
}


def free_ports(n: int) -> list[int]:
    socks = []
    for _ in range(n):
        s = socket.socket()
        s.bind(("127.0.0.1", 0))
        socks.append(s)
    ports = [s.getsockname()[1] for s in socks]
    for s in socks:
        s.close()
    return ports


@dataclass
class Receiver:
    """Tiny callback receiver standing in for the service's /cursor-runner/callback."""

    url: str
    requests: list[dict[str, Any]] = field(default_factory=list)
    cond: threading.Condition = field(default_factory=threading.Condition)

    def wait_for(self, n: int, timeout: float = 10.0) -> list[dict[str, Any]]:
        with self.cond:
            assert self.cond.wait_for(lambda: len(self.requests) >= n, timeout), self.requests
            return list(self.requests)


@pytest.fixture(scope="module")
def receiver() -> Iterator[Receiver]:
    port = free_ports(1)[0]
    rec = Receiver(url=f"http://127.0.0.1:{port}/cursor-runner/callback")

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:  # noqa: N802 - http.server naming
            body = self.rfile.read(int(self.headers.get("content-length", 0)))
            with rec.cond:
                rec.requests.append(
                    {"path": self.path, "headers": dict(self.headers), "json": json.loads(body)}
                )
                rec.cond.notify_all()
            out = b'{"received":true}'
            self.send_response(200)
            self.send_header("content-type", "application/json")
            self.send_header("content-length", str(len(out)))
            self.end_headers()
            self.wfile.write(out)

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield rec
    server.shutdown()
    server.server_close()


@dataclass
class Standin:
    proc: subprocess.Popen[bytes]
    telegram: str
    cursor: str
    elevenlabs: str
    control: str

    def ctl(self) -> httpx.Client:
        return httpx.Client(base_url=self.control, timeout=10)

    def config(self, patch: dict[str, Any]) -> dict[str, Any]:
        resp = httpx.post(f"{self.control}/_standin/config", json=patch, timeout=10)
        assert resp.status_code == 200, resp.text
        return resp.json()

    def stats(self) -> dict[str, Any]:
        return httpx.get(f"{self.control}/_standin/stats", timeout=10).json()

    def calls(self, **params: Any) -> list[dict[str, Any]]:
        return httpx.get(f"{self.control}/_standin/calls", params=params, timeout=10).json()[
            "calls"
        ]


def start_standin(tmp: Path, *extra: str) -> tuple[subprocess.Popen[bytes], list[int]]:
    ports = free_ports(4)
    cfg = tmp / "standin.json"
    cfg.write_text(json.dumps(BASE_PATCH))
    cmd = [
        sys.executable,
        "-m",
        "perfaudit.upstreams",
        "--host",
        "127.0.0.1",
        "--telegram-port",
        str(ports[0]),
        "--cursor-port",
        str(ports[1]),
        "--elevenlabs-port",
        str(ports[2]),
        "--control-port",
        str(ports[3]),
        "--config",
        str(cfg),
        *extra,
    ]
    proc = subprocess.Popen(cmd, cwd=REPO_ROOT)
    deadline = time.monotonic() + 15
    while True:
        assert proc.poll() is None, f"stand-in exited early with {proc.returncode}"
        assert time.monotonic() < deadline, "stand-in did not become healthy"
        try:
            if httpx.get(f"http://127.0.0.1:{ports[3]}/_standin/health").status_code == 200:
                return proc, ports
        except httpx.HTTPError:
            pass
        time.sleep(0.05)


def stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


@pytest.fixture(scope="module")
def standin(tmp_path_factory: pytest.TempPathFactory, receiver: Receiver) -> Iterator[Standin]:
    proc, ports = start_standin(
        tmp_path_factory.mktemp("standin"),
        "--callback-url",
        receiver.url,
        "--callback-secret",
        SECRET,
        "--telegram-token",
        TOKEN,
        "--elevenlabs-key",
        EL_KEY,
    )
    base = [f"http://127.0.0.1:{p}" for p in ports]
    try:
        yield Standin(proc, *base)
    finally:
        stop(proc)


@pytest.fixture
def si(standin: Standin, receiver: Receiver) -> Standin:
    standin.config(BASE_PATCH)
    assert httpx.post(f"{standin.control}/_standin/reset").status_code == 200
    with receiver.cond:
        receiver.requests.clear()
    return standin


def tg(si: Standin, method: str, token: str = TOKEN, **kwargs: Any) -> httpx.Response:
    return httpx.post(f"{si.telegram}/bot{token}/{method}", timeout=10, **kwargs)


def send(si: Standin, text: str, parse_mode: str | None = None) -> httpx.Response:
    body: dict[str, Any] = {"chat_id": 42, "text": text}
    if parse_mode:
        body["parse_mode"] = parse_mode
    return tg(si, "sendMessage", json=body)


# --- Telegram -----------------------------------------------------------------------------


def test_defaults_are_realistic(standin: Standin) -> None:
    assert DEFAULT_ROUTES["telegram.fileDownload"].response_bytes == 48 * 1024
    assert DEFAULT_ROUTES["elevenlabs.tts"].response_bytes == 32 * 1024
    assert DEFAULT_ROUTES["elevenlabs.stt"].latency_ms == 900
    assert DEFAULT_ROUTES["cursor.iterateAsync"].latency_ms == 20
    assert StandinConfig.default().callback_delay_ms == 3000
    routes = httpx.get(f"{standin.control}/_standin/config").json()["routes"]
    assert set(routes) == set(CONFIGURABLE_ROUTES)
    assert routes["elevenlabs.stt"]["timeout_ms"] == 65000


def test_send_message_html_validation(si: Standin) -> None:
    ok = send(
        si,
        '<b>bold</b> &amp; &lt;x&gt; &#33; <a href="http://e.com/?a=1&amp;b=2">link</a> '
        '<span class="tg-spoiler">s</span> <pre><code class="language-py">x = 1</code></pre> 2 > 1',
        "HTML",
    )
    assert ok.status_code == 200, ok.text
    result = ok.json()["result"]
    assert result["text"] == "bold & <x> ! link s x = 1 2 > 1"
    assert result["chat"] == {"id": 42}
    second = send(si, "plain")
    assert second.json()["result"]["message_id"] == result["message_id"] + 1

    cases = {
        "<pre><code>x</code>": 'Can\'t find end tag corresponding to start tag "pre"',
        "a < b": 'Unsupported start tag "" at byte offset 2',
        "AT&T": "Unsupported HTML entity at byte offset 2",
        "<b><i>x</b></i>": 'Unmatched end tag at byte offset 7, expected "</i>", found "</b>"',
        "<div>x</div>": 'Unsupported start tag "div" at byte offset 0',
        "x</b>": "Unexpected end tag at byte offset 1",
        '<span class="big">x</span>': 'Tag "span" must have class "tg-spoiler"',
    }
    for text, message in cases.items():
        resp = send(si, text, "HTML")
        assert resp.status_code == 400, text
        body = resp.json()
        assert body["ok"] is False and body["error_code"] == 400
        assert body["description"].startswith("Bad Request: can't parse entities: "), body
        assert message in body["description"], (text, body)


def test_send_message_markdown_validation(si: Standin) -> None:
    resp = send(si, "é *bold", "Markdown")  # é is 2 bytes: offsets are UTF-8 byte offsets
    assert resp.status_code == 400
    assert resp.json()["description"] == (
        "Bad Request: can't parse entities: Can't find end of the entity starting at byte offset 3"
    )
    assert send(si, "snake_case name", "Markdown").status_code == 400
    # Legacy Markdown knows nothing about HTML: the service's debug output passes it.
    ok = send(si, "✅ Done\n\n📝 Output:\n<pre><code>Created README.md</code></pre>", "Markdown")
    assert ok.status_code == 200, ok.text
    ok = send(si, "*b* _i_ `c` ```py\npre``` [t](http://x) \\_esc", "Markdown")
    assert ok.status_code == 200, ok.text
    assert ok.json()["result"]["text"] == "b i c pre t _esc"
    assert send(si, "```unclosed pre", "Markdown").status_code == 400


def test_send_message_length_empty_and_form(si: Standin) -> None:
    assert send(si, "a" * 4096).status_code == 200
    long = send(si, "a" * 4097)
    assert long.status_code == 400
    assert long.json()["description"] == "Bad Request: message is too long"
    # The limit applies after entity parsing.
    assert send(si, "<b>" + "a" * 4096 + "</b>", "HTML").status_code == 200
    assert send(si, "&amp;" * 4097, "HTML").status_code == 400
    empty = send(si, "")
    assert empty.json()["description"] == "Bad Request: message text is empty"
    assert send(si, "<b> </b>", "HTML").status_code == 400
    form = tg(si, "sendMessage", data={"chat_id": "7", "text": "<i>x</i>", "parse_mode": "html"})
    assert form.status_code == 200 and form.json()["result"]["chat"]["id"] == 7
    assert send(si, "x", "Fancy").json()["description"] == "Bad Request: unsupported parse_mode"
    bad_token = tg(si, "sendMessage", token="1:wrong", json={"chat_id": 1, "text": "x"})
    assert bad_token.status_code == 401
    assert bad_token.json() == {"ok": False, "error_code": 401, "description": "Unauthorized"}
    assert tg(si, "noSuchMethod").json()["error_code"] == 404


def test_get_file_and_download(si: Standin) -> None:
    si.config({"routes": {"telegram.fileDownload": {"response_bytes": 200_000}}})
    info = tg(si, "getFile", json={"file_id": "voice-1"}).json()["result"]
    assert info["file_size"] == 200_000
    assert info["file_path"].startswith("voice/file_") and info["file_path"].endswith(".oga")
    dl = httpx.get(f"{si.telegram}/file/bot{TOKEN}/{info['file_path']}")
    assert dl.status_code == 200
    assert dl.headers["content-type"] == "audio/ogg"
    assert len(dl.content) == 200_000 and dl.content.startswith(b"OggS")
    assert httpx.get(f"{si.telegram}/file/bot{TOKEN}/voice/file_999.oga").status_code == 404
    calls = si.calls(route="telegram.fileDownload")
    assert calls[0]["path"] == f"/file/bot<token>/{info['file_path']}"
    assert TOKEN not in json.dumps(si.calls())


def test_send_voice_records_upload(si: Standin) -> None:
    audio = b"ID3" + b"\x00" * 4997
    resp = tg(
        si,
        "sendVoice",
        data={"chat_id": "42", "reply_to_message_id": "5"},
        files={"voice": ("reply.mp3", audio, "audio/mpeg")},
    )
    assert resp.status_code == 200, resp.text
    assert resp.json()["result"]["voice"]["file_size"] == 5000
    call = si.calls(route="telegram.sendVoice")[0]
    assert call["json"]["voice"] == {
        "filename": "reply.mp3",
        "content_type": "audio/mpeg",
        "size": 5000,
    }
    assert call["json"]["chat_id"] == "42"
    assert tg(si, "sendVoice", data={"chat_id": "42"}).status_code == 400


def test_webhook_methods(si: Standin) -> None:
    assert tg(si, "setWebhook", json={"url": "https://x/telegram/webhook", "secret_token": "s"})
    info = httpx.get(f"{si.telegram}/bot{TOKEN}/getWebhookInfo").json()
    assert info == {
        "ok": True,
        "result": {
            "url": "https://x/telegram/webhook",
            "has_custom_certificate": False,
            "pending_update_count": 0,
        },
    }
    assert tg(si, "deleteWebhook", json={}).json()["result"] is True
    assert tg(si, "getWebhookInfo").json()["result"]["url"] == ""
    assert tg(si, "answerCallbackQuery", json={"callback_query_id": "q"}).json()["ok"] is True


# --- ElevenLabs ---------------------------------------------------------------------------


def test_speech_to_text(si: Standin) -> None:
    si.config({"transcript": "hello there"})
    headers = {"xi-api-key": EL_KEY}
    files = {"file": ("voice.ogg", b"OggS" + b"x" * 12_341, "audio/ogg")}
    resp = httpx.post(
        f"{si.elevenlabs}/v1/speech-to-text",
        headers=headers,
        data={"model_id": "scribe_v1"},
        files=files,
    )
    assert resp.status_code == 200, resp.text
    assert resp.json() == {"language_code": "en", "text": "hello there"}
    call = si.calls(route="elevenlabs.stt")[0]
    assert call["json"]["file"]["size"] == 12_345
    assert call["json"]["model_id"] == "scribe_v1"
    missing = httpx.post(f"{si.elevenlabs}/v1/speech-to-text", headers=headers, data={"a": "b"})
    assert missing.status_code == 400 and missing.json() == {"detail": "file is required"}
    unauth = httpx.post(f"{si.elevenlabs}/v1/speech-to-text", files=files)
    assert unauth.status_code == 401
    assert unauth.json()["detail"]["status"] == "invalid_api_key"


def test_text_to_speech(si: Standin) -> None:
    si.config({"routes": {"elevenlabs.tts": {"response_bytes": 100_001}}})
    url = f"{si.elevenlabs}/v1/text-to-speech/vfaqCOvlrKi4Zp7C2IAm"
    headers = {"xi-api-key": EL_KEY, "accept": "audio/mpeg"}
    resp = httpx.post(url, headers=headers, json={"text": "hi", "model_id": "eleven_turbo_v2_5"})
    assert resp.status_code == 200
    assert resp.headers["content-type"] == "audio/mpeg"
    assert len(resp.content) == 100_001 and resp.content.startswith(b"ID3")
    blank = httpx.post(url, headers=headers, json={"text": "  "})
    assert blank.status_code == 400 and blank.json() == {"detail": [{"msg": "text is required"}]}


# --- cursor-runner ------------------------------------------------------------------------

ITERATE_BODY = {
    "repository": "",
    "branchName": "main",
    "prompt": "Add a README",
    "maxIterations": 25,
    "id": "telegram-1735689600-a1b2c3d4",
}


def test_async_iterate_calls_back(si: Standin, receiver: Receiver) -> None:
    si.config({"callback_delay_ms": 300})
    ack = httpx.post(f"{si.cursor}/cursor/iterate/async", json=ITERATE_BODY)
    assert ack.status_code == 200
    body = ack.json()
    assert body["success"] is True and body["requestId"] == ITERATE_BODY["id"]
    assert body["message"] == "Request accepted, processing asynchronously"
    assert receiver.requests == []  # the ack came before the work finished
    assert si.stats()["callbacks"]["pending"] == 1

    got = receiver.wait_for(1)[0]
    assert got["path"] == "/cursor-runner/callback"
    assert got["headers"]["X-Webhook-Secret"] == SECRET
    assert got["headers"]["X-Cursor-Runner-Secret"] == SECRET
    payload = got["json"]
    assert set(payload) == {
        "success",
        "requestId",
        "repository",
        "branchName",
        "output",
        "error",
        "exitCode",
        "duration",
        "timestamp",
        "iterations",
        "maxIterations",
    }
    assert payload["success"] is True and payload["requestId"] == ITERATE_BODY["id"]
    assert payload["output"] == "Created README.md\n" and payload["error"] is None
    assert payload["exitCode"] == 0 and payload["iterations"] == 3
    assert payload["maxIterations"] == 25 and payload["duration"].endswith("ms")
    assert int(payload["duration"][:-2]) >= 300
    assert payload["timestamp"].endswith("Z")

    wait_until(lambda: si.stats()["callbacks"]["sent"] == 1)
    assert si.stats()["callbacks"] == {"sent": 1, "failed": 0, "pending": 0}
    call = si.calls(route="cursor.callback")[0]
    assert call["status"] == 200 and call["delivered"] is True


def test_async_iterate_secret_in_url_failure_and_size(si: Standin, receiver: Receiver) -> None:
    si.config(
        {"callback_failure_rate": 1.0, "routes": {"cursor.iterateAsync": {"response_bytes": 10}}}
    )
    url = receiver.url + "?secret=from-url&x=1"
    httpx.post(f"{si.cursor}/cursor/iterate/async", json={**ITERATE_BODY, "callbackUrl": url})
    got = receiver.wait_for(1)[0]
    assert got["path"] == "/cursor-runner/callback?x=1"
    assert got["headers"]["X-Webhook-Secret"] == "from-url"
    assert got["headers"]["X-Cursor-Runner-Secret"] == "from-url"
    assert got["json"]["success"] is False and got["json"]["iterations"] == 0
    assert got["json"]["error"]

    si.config({"callback_failure_rate": 0.0})
    httpx.post(f"{si.cursor}/cursor/iterate/async", json=ITERATE_BODY)
    output = receiver.wait_for(2)[1]["json"]["output"]
    assert len(output.encode()) == 10


def test_callback_delivery_failure_is_counted(si: Standin) -> None:
    dead = f"http://127.0.0.1:{free_ports(1)[0]}/cursor-runner/callback"
    httpx.post(f"{si.cursor}/cursor/iterate/async", json={**ITERATE_BODY, "callbackUrl": dead})
    wait_until(lambda: si.stats()["callbacks"]["failed"] == 1)
    assert si.stats()["callbacks"] == {"sent": 0, "failed": 1, "pending": 0}
    call = si.calls(route="cursor.callback")[0]
    assert call["delivered"] is False and call["status"] == 0 and call["error"]


def test_sync_cursor_and_git_endpoints(si: Standin) -> None:
    si.config({"callback_delay_ms": 50, "routes": {"cursor.iterate": {"response_bytes": 64}}})
    it = httpx.post(f"{si.cursor}/cursor/iterate", json=ITERATE_BODY)
    assert it.status_code == 200 and it.json()["success"] is True
    assert len(it.json()["output"]) == 64
    ex = httpx.post(f"{si.cursor}/cursor/execute", json={**ITERATE_BODY, "id": "e1"})
    assert ex.json()["requestId"] == "e1" and ex.json()["output"] == "Created README.md\n"
    assert httpx.post(f"{si.cursor}/cursor/execute", json={"id": "x"}).status_code == 400

    clone = httpx.post(
        f"{si.cursor}/git/clone", json={"repositoryUrl": "https://github.com/acme/widgets.git"}
    )
    assert clone.json() == {
        "success": True,
        "repository": "widgets",
        "message": "Repository cloned successfully",
    }
    repos = httpx.get(f"{si.cursor}/git/repositories").json()
    assert repos["success"] is True and "widgets" in repos["repositories"]
    assert repos["count"] == len(repos["repositories"]) >= 3
    co = httpx.post(f"{si.cursor}/git/checkout", json={"repository": "widgets", "branch": "dev"})
    assert co.status_code == 200 and co.json()["success"] is True
    missing = httpx.post(f"{si.cursor}/git/push", json={"repository": "widgets"})
    assert missing.status_code == 400 and missing.json()["success"] is False
    unknown = httpx.post(f"{si.cursor}/git/pull", json={"repository": "nope", "branch": "main"})
    assert unknown.status_code == 422
    assert unknown.json() == {"success": False, "error": "Repository not found"}
    assert httpx.post(f"{si.cursor}/git/clone", json={}).status_code == 400


# --- behaviour model ----------------------------------------------------------------------


def test_latency_is_honoured(si: Standin) -> None:
    si.config({"routes": {"telegram.sendMessage": {"latency_ms": 300}}})
    t0 = time.perf_counter()
    assert send(si, "hi").status_code == 200
    assert time.perf_counter() - t0 >= 0.3
    assert si.calls(route="telegram.sendMessage")[0]["duration_ms"] >= 300


def test_timeout_rate_hangs_then_answers(si: Standin) -> None:
    si.config({"routes": {"elevenlabs.stt": {"timeout_rate": 1.0, "timeout_ms": 250}}})
    t0 = time.perf_counter()
    resp = httpx.post(
        f"{si.elevenlabs}/v1/speech-to-text",
        headers={"xi-api-key": EL_KEY},
        files={"file": ("a.ogg", b"OggS", "audio/ogg")},
    )
    assert time.perf_counter() - t0 >= 0.25
    assert resp.status_code == 200
    assert si.calls(route="elevenlabs.stt")[0]["timed_out"] is True


def test_error_rate_injects_errors(si: Standin) -> None:
    si.config({"routes": {"telegram.*": {"error_rate": 1.0}, "git.clone": {"error_rate": 1.0}}})
    si.config({"routes": {"git.clone": {"error_status": 503}}})
    for _ in range(3):
        resp = send(si, "hi")
        assert resp.status_code == 500
        assert resp.json() == {
            "ok": False,
            "error_code": 500,
            "description": "Internal Server Error",
        }
    clone = httpx.post(f"{si.cursor}/git/clone", json={"repositoryUrl": "https://x/y.git"})
    assert clone.status_code == 503 and clone.json()["success"] is False
    routes = si.stats()["routes"]
    assert routes["telegram.sendMessage"] == {"calls": 3, "errors": 3}
    assert routes["git.clone"] == {"calls": 1, "errors": 1}


def wait_until(pred: Any, timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not pred():
        assert time.monotonic() < deadline, "condition not reached"
        time.sleep(0.02)


def test_new_connection_counting(si: Standin) -> None:
    wait_until(lambda: si.stats()["connections"]["telegram"]["open"] == 0)
    with httpx.Client() as client:
        for _ in range(5):
            assert client.get(f"{si.telegram}/bot{TOKEN}/getWebhookInfo").status_code == 200
        assert si.stats()["connections"]["telegram"] == {"new": 1, "open": 1}
    for _ in range(5):
        with httpx.Client() as client:
            client.get(f"{si.telegram}/bot{TOKEN}/getWebhookInfo")
    wait_until(lambda: si.stats()["connections"]["telegram"]["open"] == 0)
    conns = si.stats()["connections"]
    assert conns["telegram"] == {"new": 6, "open": 0}
    assert conns["cursor_runner"]["new"] == 0 and conns["elevenlabs"]["new"] == 0


# --- control API --------------------------------------------------------------------------


def test_config_validation_and_wildcards(si: Standin) -> None:
    with si.ctl() as ctl:
        before = ctl.get("/_standin/config").json()
        bad = [
            ({"nope": 1}, "unknown config key 'nope'"),
            ({"routes": {"telegram.nope": {}}}, "unknown route 'telegram.nope'"),
            ({"routes": {"slack.*": {}}}, "unknown route 'slack.*'"),
            ({"callback_delay_ms": -1}, "callback_delay_ms"),
            ({"callback_url": "ftp://x"}, "callback_url"),
            ({"routes": {"*": {"latency": 1}}}, "routes.*.latency"),
            ({"routes": {"git.push": {"error_status": 200}}}, "routes.git.push.error_status"),
        ]
        for patch, message in bad:
            resp = ctl.post("/_standin/config", json=patch)
            assert resp.status_code == 400, patch
            assert message in resp.json()["error"], (patch, resp.json())
        resp = ctl.post(
            "/_standin/config",
            json={"seed": 5, "routes": {"telegram.sendMessage": {"error_rate": 2}}},
        )
        assert resp.status_code == 400
        assert "routes.telegram.sendMessage.error_rate" in resp.json()["error"]
        assert ctl.post("/_standin/config", content=b"{not json").status_code == 400
        assert ctl.get("/_standin/config").json() == before  # rejected patches change nothing

        cfg = ctl.post(
            "/_standin/config",
            json={
                "routes": {
                    "telegram.getFile": {"latency_ms": 7},
                    "telegram.*": {"latency_ms": 3, "jitter_ms": 1},
                }
            },
        ).json()
        for name in TELEGRAM_ROUTES:
            want = 7 if name == "telegram.getFile" else 3
            assert cfg["routes"][name]["latency_ms"] == want
            assert cfg["routes"][name]["jitter_ms"] == 1
        assert cfg["routes"]["cursor.execute"]["latency_ms"] == 0
        assert cfg["seed"] == 1
    si.config(fast_patch())


def test_calls_query_and_reset(si: Standin) -> None:
    for i in range(4):
        send(si, f"m{i}")
    tg(si, "getFile", json={"file_id": "f"})
    calls = si.calls()
    assert [c["route"] for c in calls] == ["telegram.sendMessage"] * 4 + ["telegram.getFile"]
    assert calls[0]["json"] == {"chat_id": 42, "text": "m0"}
    assert calls[0]["path"] == "/bot<token>/sendMessage" and calls[0]["method"] == "POST"
    since = calls[1]["seq"]
    later = si.calls(route="telegram.sendMessage", since=since, limit=1)
    assert [c["json"]["text"] for c in later] == ["m2"]
    assert len(si.calls(route="telegram.*")) == 5
    assert httpx.get(f"{si.control}/_standin/calls", params={"since": "x"}).status_code == 400
    si.config({"routes": {"telegram.getFile": {"latency_ms": 1}}})

    assert httpx.post(f"{si.control}/_standin/reset").json() == {"ok": True}
    stats = si.stats()
    assert si.calls() == [] and stats["routes"] == {}
    assert stats["connections"]["telegram"]["new"] == 0
    assert httpx.get(f"{si.control}/_standin/pending_callbacks").json() == {"pending": 0}
    cfg = httpx.get(f"{si.control}/_standin/config").json()
    assert cfg["routes"]["telegram.getFile"]["latency_ms"] == 1  # config survives reset
    send(si, "after")
    assert si.calls()[0]["seq"] > calls[-1]["seq"]  # cursors held by clients stay valid


# --- process lifecycle --------------------------------------------------------------------


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_signal_exits_cleanly(tmp_path: Path, sig: signal.Signals) -> None:
    proc, ports = start_standin(tmp_path)
    try:
        with httpx.Client() as client:  # leave an idle keep-alive connection open
            client.get(f"http://127.0.0.1:{ports[0]}/botX/getWebhookInfo")
            proc.send_signal(sig)
            assert proc.wait(10) == 0
    finally:
        stop(proc)


def test_bad_config_file_exits_with_message(tmp_path: Path) -> None:
    cfg = tmp_path / "bad.json"
    cfg.write_text(json.dumps({"routes": {"telegram.sendMessage": {"latency_ms": "slow"}}}))
    ports = [str(p) for p in free_ports(4)]
    proc = subprocess.run(
        [sys.executable, "-m", "perfaudit.upstreams", "--config", str(cfg)]
        + ["--telegram-port", ports[0], "--cursor-port", ports[1]]
        + ["--elevenlabs-port", ports[2], "--control-port", ports[3]],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert proc.returncode == 2
    assert "routes.telegram.sendMessage.latency_ms" in proc.stderr
