"""ElevenLabs stand-in: speech-to-text (multipart upload) and text-to-speech (streamed mp3)."""

from __future__ import annotations

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route

from perfaudit.upstreams import routes as r
from perfaudit.upstreams.payloads import read_body, stream_bytes
from perfaudit.upstreams.runtime import Runtime


def el_error(status: int) -> JSONResponse:
    detail = {"status": "injected_error", "message": "Injected error (stand-in)"}
    return JSONResponse({"detail": detail}, status_code=status)


_UNAUTHORIZED = {"detail": {"status": "invalid_api_key", "message": "Invalid API key"}}


def build_app(rt: Runtime) -> Starlette:
    def authorized(request: Request) -> bool:
        expected = rt.credentials.elevenlabs_key
        return expected is None or request.headers.get("xi-api-key") == expected

    async def speech_to_text(request: Request) -> Response:
        body = await read_body(request)  # reads the whole upload, like the real API

        async def handle() -> Response:
            if not authorized(request):
                return JSONResponse(_UNAUTHORIZED, status_code=401)
            if "file" not in body.files:
                return JSONResponse({"detail": "file is required"}, status_code=400)
            return JSONResponse({"language_code": "en", "text": rt.config.transcript})

        return await rt.serve(r.EL_STT, request, request.url.path, body.record(), handle, el_error)

    async def text_to_speech(request: Request) -> Response:
        body = await read_body(request)

        async def handle() -> Response:
            if not authorized(request):
                return JSONResponse(_UNAUTHORIZED, status_code=401)
            text = body.fields.get("text")
            if not isinstance(text, str) or not text.strip():
                return JSONResponse({"detail": [{"msg": "text is required"}]}, status_code=400)
            size = rt.config.routes[r.EL_TTS].response_bytes or 0
            return StreamingResponse(
                stream_bytes(b"ID3", size),
                media_type="audio/mpeg",
                headers={"content-length": str(size)},
            )

        return await rt.serve(r.EL_TTS, request, request.url.path, body.record(), handle, el_error)

    return Starlette(
        routes=[
            Route("/v1/speech-to-text", speech_to_text, methods=["POST"]),
            Route("/v1/text-to-speech/{voice_id}", text_to_speech, methods=["POST"]),
        ]
    )
