"""Upstream clients against a real local HTTP server imitating Telegram, cursor-runner and ElevenLabs.

One Starlette app under uvicorn (background thread, free port on 127.0.0.1) records every request,
including the client's port, so tests can count TCP connections server-side.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import random
import re
import socket
import threading
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

import pytest
import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response, StreamingResponse
from starlette.routing import Route

from perfaudit.refservice import switches as sw
from perfaudit.refservice.clients import (
    CursorRunnerClient,
    CursorRunnerConnectionError,
    CursorRunnerError,
    CursorRunnerInvalidResponseError,
    CursorRunnerTimeoutError,
    ElevenLabsConnectionError,
    ElevenLabsError,
    HttpClients,
    SpeechToText,
    SynthesisError,
    TelegramClient,
    TelegramError,
    TextToSpeech,
    TranscriptionError,
    new_request_id,
)
from perfaudit.refservice.config import Settings

TOKEN = "123456:TEST-token"
API_KEY = "xi-test-key"
AUDIO = random.Random(7).randbytes(300_000)  # served by the file download and TTS
T = TypeVar("T")


# --- the stand-in server -------------------------------------------------------------------------


@dataclasses.dataclass
class Call:
    method: str
    path: str
    headers: dict[str, str]
    port: int
    json: Any = None
    form: dict[str, str] = dataclasses.field(default_factory=dict)
    files: dict[str, tuple[str, str, bytes]] = dataclasses.field(default_factory=dict)


class Upstream:
    def __init__(self) -> None:
        self.calls: list[Call] = []
        self.app = Starlette(routes=[Route("/{path:path}", self.handle, methods=["GET", "POST"])])

    async def record(self, request: Request) -> Call:
        call = Call(
            request.method,
            request.url.path,
            {k.lower(): v for k, v in request.headers.items()},
            request.client.port if request.client else -1,
        )
        ctype = call.headers.get("content-type", "")
        if ctype.startswith("multipart/"):
            async with request.form() as form:
                for key, value in form.multi_items():
                    if isinstance(value, str):
                        call.form[key] = value
                    else:
                        data = await value.read()
                        call.files[key] = (value.filename or "", value.content_type or "", data)
        elif ctype.startswith("application/json"):
            body = await request.body()
            call.json = json.loads(body) if body else None
        self.calls.append(call)
        return call

    async def handle(self, request: Request) -> Response:
        call = await self.record(request)
        path = call.path
        if path.startswith("/file/bot"):
            if path.endswith("/missing.oga"):
                return PlainTextResponse("nope", status_code=404)
            return Response(AUDIO, media_type="audio/ogg")
        if path.startswith("/bot"):
            return self.telegram(path.rsplit("/", 1)[1], call)
        if path.startswith(("/cursor/", "/git/")):
            return await self.cursor_runner(call)
        if path == "/v1/speech-to-text":
            return self.stt(call)
        if path.startswith("/v1/text-to-speech/"):
            return self.tts(call)
        return PlainTextResponse("not found", status_code=404)

    @staticmethod
    def telegram(method: str, call: Call) -> Response:
        body = call.json or {}
        if method == "sendMessage" and body.get("chat_id") == -400:
            return JSONResponse(
                {"ok": False, "error_code": 400, "description": "Bad Request: can't parse"},
                status_code=400,
            )
        if method == "getFile":
            if body.get("file_id") == "missing":
                return JSONResponse(
                    {"ok": False, "error_code": 400, "description": "Bad Request: invalid file_id"},
                    status_code=400,
                )
            return JSONResponse(
                {"ok": True, "result": {"file_id": body["file_id"], "file_path": "voice/f_1.oga"}}
            )
        return JSONResponse({"ok": True, "result": {"method": method}})

    @staticmethod
    async def cursor_runner(call: Call) -> Response:
        prompt = (call.json or {}).get("prompt", "")
        if call.path == "/git/repositories":
            return JSONResponse({"success": True, "repositories": ["a", "b"], "count": 2})
        if prompt == "422":
            return JSONResponse({"success": False, "error": "not valid"}, status_code=422)
        if prompt == "500":
            return JSONResponse({"success": False, "error": "boom"}, status_code=500)
        if prompt == "503":
            return PlainTextResponse("down", status_code=503)
        if prompt == "notjson":
            return PlainTextResponse("certainly not json")
        if prompt == "slow":
            await asyncio.sleep(1.0)
        return JSONResponse({"success": True, "echo": call.json})

    @staticmethod
    def stt(call: Call) -> Response:
        if call.headers.get("xi-api-key") == "bad-key":
            detail = {"status": "invalid_api_key", "message": "Invalid API key"}
            return JSONResponse({"detail": detail}, status_code=401)
        if call.form.get("model_id") == "empty":
            return JSONResponse({"text": "  "})
        if call.form.get("model_id") == "fail":
            return PlainTextResponse("oops", status_code=500)
        return JSONResponse({"text": "hello world"})

    @staticmethod
    def tts(call: Call) -> Response:
        text = (call.json or {}).get("text")
        errors: dict[str, tuple[int, Any]] = {
            "fail-array": (422, [{"msg": "first"}, {"msg": "second"}]),
            "fail-detail": (400, {"detail": "bad text", "error": "ignored"}),
            "fail-detail-list": (422, {"detail": [{"msg": "field required"}]}),
            "fail-error": (400, {"error": "err", "message": "ignored"}),
            "fail-message": (500, {"message": "msg"}),
        }
        if text in errors:
            status, body = errors[text]
            return JSONResponse(body, status_code=status)
        if text == "fail-plain":
            return PlainTextResponse("broken", status_code=502)
        if text == "break":

            async def partial() -> AsyncIterator[bytes]:
                yield AUDIO[:200_000]
                await asyncio.sleep(0.05)
                raise RuntimeError("connection dropped mid-body")

            return StreamingResponse(partial(), media_type="audio/mpeg")
        return Response(AUDIO, media_type="audio/mpeg")


class ServerThread:
    def __init__(self, app: Any) -> None:
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind(("127.0.0.1", 0))
        self.url = f"http://127.0.0.1:{self.sock.getsockname()[1]}"
        config = uvicorn.Config(
            app, log_level="critical", lifespan="off", loop="asyncio", http="h11"
        )
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(
            target=self.server.run, kwargs={"sockets": [self.sock]}, daemon=True
        )

    def __enter__(self) -> ServerThread:
        self.thread.start()
        deadline = time.monotonic() + 10
        while not self.server.started:
            if time.monotonic() > deadline or not self.thread.is_alive():
                raise RuntimeError("stand-in server did not start")
            time.sleep(0.01)
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.should_exit = True
        self.thread.join(10)
        self.sock.close()


@pytest.fixture(scope="module")
def upstream() -> Iterator[tuple[Upstream, str]]:
    stand_in = Upstream()
    with ServerThread(stand_in.app) as server:
        yield stand_in, server.url


@pytest.fixture
def stand_in(upstream: tuple[Upstream, str]) -> Upstream:
    upstream[0].calls.clear()
    return upstream[0]


@pytest.fixture
def base_url(upstream: tuple[Upstream, str]) -> str:
    return upstream[1]


def free_port_url() -> str:
    """A URL on which nothing listens (the port was free a moment ago)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    return f"http://127.0.0.1:{port}"


# --- settings and running ------------------------------------------------------------------------

VARIANTS = [
    pytest.param(frozenset(), id="phase3"),
    pytest.param(frozenset(sw.NAMES), id="optimized"),
    pytest.param(frozenset({"http-keepalive"}), id="keepalive-only"),
    pytest.param(frozenset({"stream-audio", "text-fastpath"}), id="stream-only"),
]


@pytest.fixture(params=VARIANTS)
def switches(request: pytest.FixtureRequest) -> frozenset[str]:
    return request.param


def make_settings(url: str, switches: frozenset[str], **overrides: Any) -> Settings:
    values: dict[str, Any] = {
        "telegram_api_url": url,
        "cursor_runner_url": url,
        "elevenlabs_api_url": url,
        "telegram_bot_token": TOKEN,
        "elevenlabs_api_key": API_KEY,
        "switches": switches,
    }
    values.update(overrides)
    return dataclasses.replace(Settings(), **values)


def run(settings: Settings, fn: Callable[[HttpClients], Awaitable[T]]) -> T:
    async def main() -> T:
        clients = HttpClients(settings)
        try:
            return await fn(clients)
        finally:
            await clients.aclose()

    return asyncio.run(main())


# --- telegram ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("parse_mode", "sent_text", "sent_mode"),
    [
        ("HTML", "&lt;pre&gt;a &amp; b&lt;/pre&gt;", "HTML"),
        ("Markdown", "<pre>a & b</pre>", "Markdown"),
        (None, "<pre>a & b</pre>", None),
    ],
)
def test_send_message(
    stand_in: Upstream,
    base_url: str,
    switches: frozenset[str],
    parse_mode: str | None,
    sent_text: str,
    sent_mode: str | None,
) -> None:
    settings = make_settings(base_url, switches)
    result = run(
        settings,
        lambda c: TelegramClient(settings, c).send_message(
            42, "<pre>a & b</pre>", parse_mode=parse_mode, reply_to_message_id=7
        ),
    )
    assert result == {"ok": True, "result": {"method": "sendMessage"}}
    [call] = stand_in.calls
    assert (call.method, call.path) == ("POST", f"/bot{TOKEN}/sendMessage")
    expected: dict[str, Any] = {"chat_id": 42, "text": sent_text, "reply_to_message_id": 7}
    if sent_mode:
        expected["parse_mode"] = sent_mode
    assert call.json == expected


def test_telegram_error_has_description_and_status(
    stand_in: Upstream, base_url: str, switches: frozenset[str]
) -> None:
    settings = make_settings(base_url, switches)
    with pytest.raises(TelegramError) as err:
        run(settings, lambda c: TelegramClient(settings, c).send_message(-400, "x"))
    assert str(err.value) == "Telegram API error: Bad Request: can't parse"
    assert err.value.status_code == 400
    assert err.value.description == "Bad Request: can't parse"


def test_telegram_connection_refused(switches: frozenset[str]) -> None:
    settings = make_settings(free_port_url(), switches)
    with pytest.raises(TelegramError, match="^Failed to connect to Telegram: "):
        run(settings, lambda c: TelegramClient(settings, c).send_message(1, "x"))


def test_get_file(stand_in: Upstream, base_url: str, switches: frozenset[str]) -> None:
    settings = make_settings(base_url, switches)
    result = run(settings, lambda c: TelegramClient(settings, c).get_file("AwACAg"))
    assert result == {"file_id": "AwACAg", "file_path": "voice/f_1.oga"}
    assert stand_in.calls[0].path == f"/bot{TOKEN}/getFile"
    with pytest.raises(TelegramError, match=r"^Telegram API error: Bad Request: invalid file_id$"):
        run(settings, lambda c: TelegramClient(settings, c).get_file("missing"))


def test_download_writes_same_bytes(
    stand_in: Upstream, base_url: str, switches: frozenset[str], tmp_path: Path
) -> None:
    settings = make_settings(base_url, switches)
    dest = tmp_path / "nested" / "dir" / "telegram_x_f_1.oga"
    size = run(settings, lambda c: TelegramClient(settings, c).download_file("voice/f_1.oga", dest))
    assert size == len(AUDIO)
    assert dest.read_bytes() == AUDIO
    [call] = stand_in.calls
    assert (call.method, call.path) == ("GET", f"/file/bot{TOKEN}/voice/f_1.oga")


def test_download_error_leaves_no_file(
    base_url: str, switches: frozenset[str], tmp_path: Path
) -> None:
    settings = make_settings(base_url, switches)
    dest = tmp_path / "missing.oga"
    with pytest.raises(TelegramError, match=r"^Failed to download file: HTTP 404 Not Found$"):
        run(settings, lambda c: TelegramClient(settings, c).download_file("v/missing.oga", dest))
    assert not dest.exists()


@pytest.mark.parametrize(
    ("name", "mime"),
    [
        ("a.ogg", "audio/ogg"),
        ("a.OGA", "audio/ogg"),
        ("a.wav", "audio/wav"),
        ("a.mp3", "audio/mpeg"),
    ],
)
def test_send_voice(
    stand_in: Upstream,
    base_url: str,
    switches: frozenset[str],
    tmp_path: Path,
    name: str,
    mime: str,
) -> None:
    settings = make_settings(base_url, switches)
    path = tmp_path / name
    path.write_bytes(AUDIO)
    run(
        settings,
        lambda c: TelegramClient(settings, c).send_voice(
            42, path, reply_to_message_id=5, caption="hi"
        ),
    )
    [call] = stand_in.calls
    assert call.path == f"/bot{TOKEN}/sendVoice"
    assert call.form == {"chat_id": "42", "reply_to_message_id": "5", "caption": "hi"}
    assert call.files["voice"] == (name, mime, AUDIO)


def test_send_voice_missing_file(
    stand_in: Upstream, base_url: str, switches: frozenset[str], tmp_path: Path
) -> None:
    settings = make_settings(base_url, switches)
    with pytest.raises(TelegramError, match="^Voice file does not exist$"):
        run(settings, lambda c: TelegramClient(settings, c).send_voice(1, tmp_path / "no.ogg"))
    assert stand_in.calls == []


def test_other_telegram_methods(
    stand_in: Upstream, base_url: str, switches: frozenset[str]
) -> None:
    settings = make_settings(base_url, switches)

    async def calls(c: HttpClients) -> None:
        tg = TelegramClient(settings, c)
        await tg.answer_callback_query("q1", text="Processing...")
        await tg.answer_callback_query("q2", show_alert=True)
        await tg.set_webhook("https://x/telegram/webhook", secret_token="s3")
        await tg.set_webhook("https://x/telegram/webhook", secret_token="  ")
        await tg.delete_webhook()
        info = await tg.get_webhook_info()
        assert info == {"ok": True, "result": {"method": "getWebhookInfo"}}

    run(settings, calls)
    got = [(c.method, c.path.rsplit("/", 1)[1], c.json) for c in stand_in.calls]
    assert got == [
        ("POST", "answerCallbackQuery", {"callback_query_id": "q1", "text": "Processing..."}),
        ("POST", "answerCallbackQuery", {"callback_query_id": "q2", "show_alert": True}),
        ("POST", "setWebhook", {"url": "https://x/telegram/webhook", "secret_token": "s3"}),
        ("POST", "setWebhook", {"url": "https://x/telegram/webhook"}),
        ("POST", "deleteWebhook", {}),
        ("GET", "getWebhookInfo", None),
    ]


@pytest.mark.parametrize("token", ["", "   "])
def test_blank_token_is_noop(
    stand_in: Upstream, base_url: str, switches: frozenset[str], tmp_path: Path, token: str
) -> None:
    settings = make_settings(base_url, switches, telegram_bot_token=token)

    async def calls(c: HttpClients) -> list[Any]:
        tg = TelegramClient(settings, c)
        return [
            await tg.send_message(1, "x"),
            await tg.send_voice(1, tmp_path / "none.ogg"),
            await tg.answer_callback_query("q"),
            await tg.get_file("f"),
            await tg.download_file("voice/f.oga", tmp_path / "f.oga"),
            await tg.set_webhook("https://x"),
            await tg.delete_webhook(),
            await tg.get_webhook_info(),
        ]

    assert run(settings, calls) == [None] * 8
    assert stand_in.calls == []
    assert not (tmp_path / "f.oga").exists()


# --- cursor-runner -------------------------------------------------------------------------------


def test_iterate_async_request(stand_in: Upstream, base_url: str, switches: frozenset[str]) -> None:
    settings = make_settings(base_url, switches)
    status, body = run(
        settings,
        lambda c: CursorRunnerClient(settings, c).iterate_async(
            prompt="Add a README", request_id="telegram-1735689600-a1b2c3d4"
        ),
    )
    expected = {
        "repository": "",
        "branchName": "main",
        "prompt": "Add a README",
        "maxIterations": 25,
        "id": "telegram-1735689600-a1b2c3d4",
    }
    assert (status, body) == (200, {"success": True, "echo": expected})
    [call] = stand_in.calls
    assert (call.method, call.path, call.json) == ("POST", "/cursor/iterate/async", expected)
    assert call.headers["content-type"] == "application/json"
    assert call.headers["accept"] == "application/json"


def test_cursor_runner_methods(stand_in: Upstream, base_url: str, switches: frozenset[str]) -> None:
    settings = make_settings(base_url, switches)

    async def calls(c: HttpClients) -> list[tuple[int, dict[str, Any]]]:
        cr = CursorRunnerClient(settings, c)
        return [
            await cr.execute(prompt="p", request_id="r1", repository="repo", branch_name="dev"),
            await cr.iterate(
                prompt="p", request_id="r2", max_iterations=3, callback_url="http://cb"
            ),
            await cr.clone("https://git/x.git", "x"),
            await cr.clone("https://git/y.git"),
            await cr.list_repositories(),
            await cr.checkout("repo", "dev"),
            await cr.push("repo", "dev"),
            await cr.pull("repo", "dev"),
        ]

    results = run(settings, calls)
    assert results[4] == (200, {"success": True, "repositories": ["a", "b"], "count": 2})
    got = [(c.method, c.path, c.json) for c in stand_in.calls]
    git = {"repository": "repo", "branch": "dev"}
    assert got == [
        (
            "POST",
            "/cursor/execute",
            {"repository": "repo", "branchName": "dev", "prompt": "p", "id": "r1"},
        ),
        (
            "POST",
            "/cursor/iterate",
            {
                "repository": "",
                "branchName": "main",
                "prompt": "p",
                "maxIterations": 3,
                "id": "r2",
                "callbackUrl": "http://cb",
            },
        ),
        ("POST", "/git/clone", {"repositoryUrl": "https://git/x.git", "repositoryName": "x"}),
        ("POST", "/git/clone", {"repositoryUrl": "https://git/y.git"}),
        ("GET", "/git/repositories", None),
        ("POST", "/git/checkout", git),
        ("POST", "/git/push", git),
        ("POST", "/git/pull", git),
    ]


def test_execute_generates_request_id(stand_in: Upstream, base_url: str) -> None:
    settings = make_settings(base_url, frozenset())
    run(settings, lambda c: CursorRunnerClient(settings, c).execute(prompt="p"))
    assert re.fullmatch(r"req-\d{10}-[0-9a-f]{8}", stand_in.calls[0].json["id"])


def test_new_request_id() -> None:
    assert re.fullmatch(r"req-\d{10}-[0-9a-f]{8}", new_request_id())
    rid = new_request_id("telegram")
    assert re.fullmatch(r"telegram-\d{10}-[0-9a-f]{8}", rid)
    assert abs(int(rid.split("-")[1]) - time.time()) < 5


def test_cursor_runner_422_is_returned(base_url: str, switches: frozenset[str]) -> None:
    settings = make_settings(base_url, switches)
    result = run(
        settings,
        lambda c: CursorRunnerClient(settings, c).iterate_async(prompt="422", request_id="r"),
    )
    assert result == (422, {"success": False, "error": "not valid"})


@pytest.mark.parametrize(
    ("prompt", "error", "message"),
    [
        ("500", CursorRunnerError, "HTTP 500: boom"),
        ("503", CursorRunnerError, "HTTP 503: Service Unavailable"),
        ("notjson", CursorRunnerInvalidResponseError, "Failed to parse response: "),
    ],
)
def test_cursor_runner_errors(
    base_url: str, switches: frozenset[str], prompt: str, error: type[Exception], message: str
) -> None:
    settings = make_settings(base_url, switches)
    with pytest.raises(error, match="^" + re.escape(message)) as err:
        run(
            settings,
            lambda c: CursorRunnerClient(settings, c).iterate_async(prompt=prompt, request_id="r"),
        )
    assert isinstance(err.value, CursorRunnerError)


def test_cursor_runner_connection_refused(switches: frozenset[str]) -> None:
    settings = make_settings(free_port_url(), switches)
    with pytest.raises(CursorRunnerConnectionError, match="^Failed to connect to cursor-runner: "):
        run(settings, lambda c: CursorRunnerClient(settings, c).list_repositories())


def test_cursor_runner_timeout(base_url: str, switches: frozenset[str]) -> None:
    settings = make_settings(base_url, switches, cursor_runner_timeout=0.2)
    with pytest.raises(CursorRunnerTimeoutError, match="^Request to cursor-runner timed out: "):
        run(
            settings,
            lambda c: CursorRunnerClient(settings, c).iterate_async(prompt="slow", request_id="r"),
        )


# --- ElevenLabs speech-to-text -------------------------------------------------------------------


def test_stt_upload(
    stand_in: Upstream, base_url: str, switches: frozenset[str], tmp_path: Path
) -> None:
    settings = make_settings(base_url, switches)
    path = tmp_path / "telegram_AwAC_f_1.ogg"
    path.write_bytes(AUDIO)
    text = run(settings, lambda c: SpeechToText(settings, c).transcribe(path))
    assert text == "hello world"
    [call] = stand_in.calls
    assert (call.method, call.path) == ("POST", "/v1/speech-to-text")
    assert call.headers["xi-api-key"] == API_KEY
    assert call.form == {"model_id": "scribe_v1"}
    assert call.files["file"] == ("telegram_AwAC_f_1.ogg", "audio/ogg", AUDIO)


def test_stt_blank_key_checked_without_request(
    stand_in: Upstream, base_url: str, switches: frozenset[str], tmp_path: Path
) -> None:
    settings = make_settings(base_url, switches, elevenlabs_api_key=" ")
    stt = SpeechToText(settings, HttpClients(settings))
    with pytest.raises(ElevenLabsError, match="^ElevenLabs API key is not configured$"):
        stt.check_configured()
    with pytest.raises(ElevenLabsError, match="^ElevenLabs API key is not configured$"):
        asyncio.run(stt.transcribe(tmp_path / "never-read.ogg"))
    assert stand_in.calls == []


@pytest.mark.parametrize(
    ("overrides", "error", "message"),
    [
        (
            {"elevenlabs_stt_model_id": "empty"},
            TranscriptionError,
            "No text returned from transcription",
        ),
        ({"elevenlabs_api_key": "bad-key"}, TranscriptionError, "Invalid API key"),
        (
            {"elevenlabs_stt_model_id": "fail"},
            TranscriptionError,
            "HTTP 500: Internal Server Error",
        ),
    ],
)
def test_stt_errors(
    base_url: str,
    switches: frozenset[str],
    tmp_path: Path,
    overrides: dict[str, str],
    error: type[Exception],
    message: str,
) -> None:
    settings = make_settings(base_url, switches, **overrides)
    path = tmp_path / "a.ogg"
    path.write_bytes(b"OggS")
    with pytest.raises(error, match="^" + re.escape(message) + "$"):
        run(settings, lambda c: SpeechToText(settings, c).transcribe(path))


def test_stt_connection_refused(switches: frozenset[str], tmp_path: Path) -> None:
    settings = make_settings(free_port_url(), switches)
    path = tmp_path / "a.ogg"
    path.write_bytes(b"OggS")
    with pytest.raises(ElevenLabsConnectionError, match="^Failed to connect to ElevenLabs: "):
        run(settings, lambda c: SpeechToText(settings, c).transcribe(path))


# --- ElevenLabs text-to-speech -------------------------------------------------------------------


def test_tts_writes_file(
    stand_in: Upstream, base_url: str, switches: frozenset[str], tmp_path: Path
) -> None:
    settings = make_settings(base_url, switches)
    out = run(settings, lambda c: TextToSpeech(settings, c).synthesize("Say hi", tmp_path / "tts"))
    assert out.parent == tmp_path / "tts"
    assert re.fullmatch(r"elevenlabs_tts_[0-9a-f]{16}\.mp3", out.name)
    assert out.read_bytes() == AUDIO
    [call] = stand_in.calls
    assert (call.method, call.path) == (
        "POST",
        f"/v1/text-to-speech/{settings.elevenlabs_voice_id}",
    )
    assert call.headers["xi-api-key"] == API_KEY
    assert call.headers["accept"] == "audio/mpeg"
    assert call.json == {
        "text": "Say hi",
        "model_id": "eleven_turbo_v2_5",
        "output_format": "mp3_44100_128",
    }


@pytest.mark.parametrize(
    ("text", "error", "message"),
    [
        ("fail-array", SynthesisError, "first; second"),
        ("fail-detail", SynthesisError, "bad text"),
        ("fail-detail-list", SynthesisError, "field required"),
        ("fail-error", SynthesisError, "err"),
        ("fail-message", SynthesisError, "msg"),
        ("fail-plain", SynthesisError, "HTTP 502: Bad Gateway"),
        ("break", ElevenLabsConnectionError, "Failed to connect to ElevenLabs: "),
    ],
)
def test_tts_errors_leave_no_file(
    base_url: str,
    switches: frozenset[str],
    tmp_path: Path,
    text: str,
    error: type[Exception],
    message: str,
) -> None:
    settings = make_settings(base_url, switches)
    with pytest.raises(error, match="^" + re.escape(message)):
        run(settings, lambda c: TextToSpeech(settings, c).synthesize(text, tmp_path))
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize(
    ("text", "overrides", "message"),
    [
        ("  ", {}, "Text is required"),
        ("hi", {"elevenlabs_voice_id": ""}, "ElevenLabs voice_id is not configured"),
        ("hi", {"elevenlabs_api_key": ""}, "ElevenLabs API key is not configured"),
    ],
)
def test_tts_validation(
    stand_in: Upstream,
    base_url: str,
    tmp_path: Path,
    text: str,
    overrides: dict[str, str],
    message: str,
) -> None:
    settings = make_settings(base_url, frozenset(), **overrides)
    with pytest.raises(ElevenLabsError, match="^" + re.escape(message) + "$"):
        run(settings, lambda c: TextToSpeech(settings, c).synthesize(text, tmp_path))
    assert stand_in.calls == []
    assert list(tmp_path.iterdir()) == []


# --- connection reuse ----------------------------------------------------------------------------


def _five_calls(target: str, settings: Settings, tmp_path: Path) -> Callable[[HttpClients], Any]:
    audio = tmp_path / "a.ogg"
    audio.write_bytes(AUDIO[:1000])

    async def one(c: HttpClients) -> None:
        if target == "telegram":
            await TelegramClient(settings, c).send_message(1, "x")
        elif target == "telegram-download":
            await TelegramClient(settings, c).download_file("voice/f.oga", tmp_path / "f.oga")
        elif target == "cursor_runner":
            await CursorRunnerClient(settings, c).list_repositories()
        elif target == "stt":
            await SpeechToText(settings, c).transcribe(audio)
        else:
            await TextToSpeech(settings, c).synthesize("hi", tmp_path / "tts")

    async def five(c: HttpClients) -> None:
        for _ in range(5):
            await one(c)

    return five


@pytest.mark.parametrize("target", ["telegram", "telegram-download", "cursor_runner", "stt", "tts"])
@pytest.mark.parametrize("keepalive", [True, False], ids=["keepalive", "per-call"])
def test_connections_per_five_calls(
    stand_in: Upstream, base_url: str, tmp_path: Path, target: str, keepalive: bool
) -> None:
    names = frozenset(sw.NAMES) if keepalive else frozenset()
    settings = make_settings(base_url, names)
    run(settings, _five_calls(target, settings, tmp_path))
    assert len(stand_in.calls) == 5
    ports = {c.port for c in stand_in.calls}
    assert len(ports) == (1 if keepalive else 5)


def test_shared_client_reopens_after_aclose(stand_in: Upstream, base_url: str) -> None:
    settings = make_settings(base_url, frozenset({"http-keepalive"}))

    async def main() -> None:
        clients = HttpClients(settings)
        cr = CursorRunnerClient(settings, clients)
        await cr.list_repositories()
        await clients.aclose()
        await cr.list_repositories()  # a fresh shared client after close
        await clients.aclose()

    asyncio.run(main())
    assert len({c.port for c in stand_in.calls}) == 2
