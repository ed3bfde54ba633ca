"""The reference service end to end, over real processes: both variants, same expectations."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import redis

from perfaudit.refservice import formatting as fmt
from perfaudit.refservice.store import pending_key
from perfaudit.stack.client import (
    StackClient,
    callback_query_update,
    next_update_id,
    text_update,
    to_chat,
    voice_update,
)
from perfaudit.stack.stack import StackInfo


def new_chat() -> int:
    return next_update_id()


def texts(calls: list[dict[str, Any]]) -> list[str]:
    return [str((c.get("json") or {}).get("text", "")) for c in calls]


def test_health(client: StackClient) -> None:
    r = client.http.get(f"{client.info.service_url}/health")
    assert r.status_code == 200
    assert r.json() == {"status": "healthy", "service": "Virtual Assistant API", "version": "1.0.0"}


def test_text_message_ends_as_formatted_reply(client: StackClient) -> None:
    chat = new_chat()
    update = text_update("Add a README to the repo", chat_id=chat)
    r = client.post_update(update)
    assert r.status_code == 200 and r.text == "OK"

    forwarded = client.wait_for(
        "cursor.iterateAsync", lambda c: c["json"].get("prompt") == "Add a README to the repo"
        and c["json"].get("id", "").startswith("telegram-"), count=1,
    )  # fmt: skip
    assert forwarded, "the message was not forwarded to cursor-runner"
    body = forwarded[-1]["json"]
    assert body["branchName"] == "main" and body["maxIterations"] == 25
    parts = body["id"].split("-")
    assert len(parts) == 3 and parts[1].isdigit() and len(parts[2]) == 8

    replies = client.wait_for(
        "telegram.sendMessage",
        lambda c: to_chat(chat)(c) and "completed successfully" in c["json"].get("text", ""),
    )
    assert replies, "no result reached the Telegram stand-in"
    reply = replies[0]["json"]
    assert reply["parse_mode"] == "Markdown"
    assert str(reply["reply_to_message_id"]) == str(update["message"]["message_id"])
    assert reply["text"].startswith(fmt.SUCCESS_HEADER)
    assert "📝 Output:\n<pre><code>Created README.md</code></pre>" in reply["text"]
    # The debug acknowledgement came first (debug is forced on at start-up).
    assert fmt.PROCESSING_ACK in texts(client.calls("telegram.sendMessage"))
    # The pending state is gone once the reply is out.
    r = redis.Redis.from_url(client.info.redis_url)
    deadline = time.monotonic() + 5
    while r.exists(pending_key(body["id"])) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not r.exists(pending_key(body["id"]))


def test_voice_message_is_transcribed_and_answered_by_voice(client: StackClient) -> None:
    chat = new_chat()
    client.configure({"transcript": "Run the test suite please"})
    assert client.post_update(voice_update(chat_id=chat)).status_code == 200

    stt = client.wait_for("elevenlabs.stt", count=1)
    assert stt and stt[-1]["json"]["file"]["size"] > 0
    forwarded = client.wait_for(
        "cursor.iterateAsync", lambda c: c["json"].get("prompt") == "Run the test suite please"
    )
    assert forwarded
    voice = client.wait_for("telegram.sendVoice", to_chat(chat))
    assert voice, "the spoken request was not answered with a voice message"
    assert voice[0]["json"]["voice"]["size"] > 0
    assert fmt.TRANSCRIBING_ACK in texts(client.calls("telegram.sendMessage"))
    # Temp files (the download and the synthesised mp3) are all removed.
    time.sleep(0.2)
    leftovers = list((Path(client.info.run_dir) / "tmp").iterdir())
    assert leftovers == []


def test_local_commands(client: StackClient) -> None:
    for command, expected in (
        ("/start", fmt.HELP_TEXT),
        ("/help", fmt.HELP_TEXT),
        ("/status", fmt.STATUS_TEXT),
    ):
        chat = new_chat()
        assert client.post_update(text_update(command, chat_id=chat)).status_code == 200
        replies = client.wait_for("telegram.sendMessage", to_chat(chat))
        assert texts(replies) == [expected], command
        assert replies[0]["json"]["parse_mode"] == "HTML"


def test_button_press_is_answered_and_forwarded(client: StackClient) -> None:
    chat = new_chat()
    update = callback_query_update("run tests", chat_id=chat)
    assert client.post_update(update).status_code == 200
    answered = client.wait_for(
        "telegram.answerCallbackQuery",
        lambda c: c["json"].get("callback_query_id") == update["callback_query"]["id"],
    )
    assert answered and answered[0]["json"].get("text") == "Processing..."
    assert client.wait_for(
        "telegram.sendMessage",
        lambda c: to_chat(chat)(c) and "completed successfully" in c["json"].get("text", ""),
    )


def test_duplicated_update_id_is_forwarded_once(client: StackClient) -> None:
    chat = new_chat()
    prompt = f"deduplicate me {chat}"
    update = text_update(prompt, chat_id=chat)
    for _ in range(3):
        assert client.post_update(update).status_code == 200
    assert client.wait_for("telegram.sendMessage", lambda c: to_chat(chat)(c)
                           and "completed successfully" in c["json"].get("text", ""))  # fmt: skip
    time.sleep(0.3)
    forwarded = [
        c for c in client.calls("cursor.iterateAsync") if c["json"].get("prompt") == prompt
    ]
    assert len(forwarded) == 1


def test_upstream_failure_retries_and_replies_once(client: StackClient) -> None:
    chat = new_chat()
    prompt = f"cursor-runner is down {chat}"
    client.configure({"routes": {"cursor.iterateAsync": {"error_rate": 1.0, "error_status": 503}}})
    assert client.post_update(text_update(prompt, chat_id=chat)).status_code == 200
    errors = client.wait_for(
        "telegram.sendMessage",
        lambda c: (
            to_chat(chat)(c) and "Failed to execute cursor command" in c["json"].get("text", "")
        ),
    )
    assert errors
    time.sleep(0.5)  # time for any (wrong) further attempt or reply
    attempts = [c for c in client.calls("cursor.iterateAsync") if c["json"].get("prompt") == prompt]
    assert len(attempts) == 4  # 1 attempt + 3 retries
    assert len({c["json"]["id"] for c in attempts}) == 1  # every retry reuses the request id
    replies = client.calls("telegram.sendMessage")
    assert len([c for c in replies if to_chat(chat)(c)]) == 1  # one error reply, no ack
    # The pending state of the failed request is removed.
    r = redis.Redis.from_url(client.info.redis_url)
    assert not r.exists(pending_key(attempts[0]["json"]["id"]))


def test_callback_unknown_and_expired_ids(client: StackClient) -> None:
    r = client.post_callback({"requestId": "telegram-1-deadbeef", "success": True})
    assert r.status_code == 200
    assert r.json() == {"received": True, "message": "Request not found"}

    store = redis.Redis.from_url(client.info.redis_url)
    rid = f"telegram-{int(time.time())}-0000abcd"
    store.setex(pending_key(rid), 1, json.dumps({"chat_id": new_chat(), "message_id": 1}))
    time.sleep(1.2)
    r = client.post_callback({"requestId": rid, "success": True, "output": "late"})
    assert r.json() == {"received": True, "message": "Request not found"}


def test_callback_parse_mode_fallback(client: StackClient) -> None:
    """An unbalanced '*' breaks Markdown; the HTML retry gets through (spec §3)."""
    chat = new_chat()
    rid = f"telegram-{int(time.time())}-{chat % 10**8:08x}"
    store = redis.Redis.from_url(client.info.redis_url)
    store.setex(pending_key(rid), 60, json.dumps({"chat_id": chat, "message_id": 7}))
    r = client.post_callback(
        {"requestId": rid, "success": "true", "output": "2*3 = 6\x1b[0m\r\n", "iterations": 2}
    )
    assert r.json() == {"received": True, "request_id": rid}
    sends = client.wait_for(
        "telegram.sendMessage", lambda c: to_chat(chat)(c) and c["status"] == 200
    )
    attempts = [c for c in client.calls("telegram.sendMessage") if to_chat(c and chat)(c)]
    assert [c["json"].get("parse_mode") for c in attempts] == ["Markdown", "HTML"]
    assert attempts[0]["status"] == 400
    assert (
        sends
        and "&lt;pre&gt;&lt;code&gt;2*3 = 6&lt;/code&gt;&lt;/pre&gt;" in sends[0]["json"]["text"]
    )
    assert "\x1b" not in sends[0]["json"]["text"]
    assert not store.exists(pending_key(rid))


def test_callback_failure_result(client: StackClient) -> None:
    chat = new_chat()
    rid = f"telegram-{int(time.time())}-{(chat + 1) % 10**8:08x}"
    store = redis.Redis.from_url(client.info.redis_url)
    store.setex(pending_key(rid), 60, json.dumps({"chat_id": chat, "message_id": 8}))
    r = client.post_callback({"request_id": rid, "success": False, "error": "boom"})
    assert r.status_code == 200
    sends = client.wait_for("telegram.sendMessage", to_chat(chat))
    assert texts(sends) == ["❌ Cursor command failed\n\nError: boom"]


def test_callback_bad_input(client: StackClient) -> None:
    assert client.post_callback({"success": True}).status_code == 400
    r = client.post_callback({"requestId": "bad id!"})
    assert r.status_code == 400 and r.json() == {"error": "Invalid request_id format"}
    r = client.post_callback({"requestId": "x" * 256})
    assert r.status_code == 400
    r = client.post_callback({"requestId": "telegram-1-aaaa"}, secret="wrong")
    assert r.status_code == 401 and r.json() == {"error": "Unauthorized"}
    # The secret may also come as ?secret= (cursor-runner's URL form).
    url = f"{client.info.service_url}/cursor-runner/callback"
    r = client.http.post(url, params={"secret": client.info.secrets.webhook_secret},
                         json={"requestId": "telegram-1-bbbb"})  # fmt: skip
    assert r.status_code == 200
    r = client.http.post(url, content=b"{not json", headers={
        "X-Webhook-Secret": client.info.secrets.webhook_secret, "Content-Type": "application/json"})  # fmt: skip
    assert r.status_code == 400 and "error" in r.json()


def test_webhook_auth_and_bad_bodies(client: StackClient, stack: StackInfo) -> None:
    chat = new_chat()
    update = text_update("/status", chat_id=chat)
    r = client.post_update(update, secret="wrong")
    assert r.status_code == 401 and r.text == "Unauthorized"
    r = client.http.post(f"{stack.service_url}/telegram/webhook", json=update)
    assert r.status_code == 401
    queue = redis.Redis.from_url(stack.redis_url)
    assert not queue.exists(f"arq:job:tg-update:{update['update_id']}")
    assert not queue.exists(f"arq:result:tg-update:{update['update_id']}")

    headers = {
        "X-Telegram-Bot-Api-Secret-Token": stack.secrets.telegram_webhook_secret,
        "Content-Type": "application/json",
    }
    url = f"{stack.service_url}/telegram/webhook"
    r = client.http.post(url, content=b'{"update_id": 1, "message": ', headers=headers)
    assert r.status_code == 400
    assert r.json()["ok"] is False and "Malformed JSON" in r.json()["result"]["error"]
    r = client.http.post(url, content=b"[1, 2]", headers=headers)
    assert r.status_code == 400
    big = json.dumps({"update_id": 2, "pad": "x" * (1024 * 1024 + 10)}).encode()
    r = client.http.post(url, content=big, headers=headers)
    assert r.status_code == 413
    assert "too large" in r.json()["result"]["error"]
    time.sleep(0.3)
    assert not client.calls("telegram.sendMessage") or not [
        c for c in client.calls("telegram.sendMessage") if to_chat(chat)(c)
    ]


def test_admin_endpoints(client: StackClient, stack: StackInfo) -> None:
    base = stack.service_url
    admin = {"X-Admin-Secret": stack.secrets.webhook_secret}
    assert client.http.get(f"{base}/telegram/webhook_info").status_code == 401
    r = client.http.get(f"{base}/telegram/webhook_info", headers={"X-Admin-Secret": "nope"})
    assert r.status_code == 401
    r = client.http.post(f"{base}/telegram/set_webhook", headers=admin,
                         json={"url": "https://example.invalid/hook"})  # fmt: skip
    assert r.status_code == 200 and r.json()["message"] == "Webhook set successfully"
    r = client.http.get(f"{base}/telegram/webhook_info",
                        params={"admin_secret": stack.secrets.webhook_secret})  # fmt: skip
    assert r.status_code == 200
    assert r.json()["webhook_info"]["result"]["url"] == "https://example.invalid/hook"
    r = client.http.delete(f"{base}/telegram/webhook", headers=admin)
    assert r.json() == {"ok": True, "message": "Webhook deleted successfully"}
    client.configure({"routes": {"telegram.getWebhookInfo": {"error_rate": 1.0}}})
    r = client.http.get(f"{base}/telegram/webhook_info", headers=admin)
    assert r.status_code == 502 and r.json()["ok"] is False


def test_cursor_runner_proxy(client: StackClient, stack: StackInfo) -> None:
    base = f"{stack.service_url}/cursor-runner"
    r = client.http.get(f"{base}/git/repositories")
    assert r.status_code == 200 and r.json()["success"] is True
    r = client.http.post(f"{base}/cursor/execute", json={"repository": "", "prompt": "hi"})
    assert r.status_code == 200 and r.json()["success"] is True
    r = client.http.post(f"{base}/git/checkout", json={"repository": "nope", "branch": "main"})
    assert r.status_code == 422 and r.json()["success"] is False
    r = client.http.post(f"{base}/git/checkout", json={"repository": "x"})
    assert r.status_code == 400
    client.configure({"routes": {"git.repositories": {"error_rate": 1.0, "error_status": 500}}})
    r = client.http.get(f"{base}/git/repositories")
    assert r.status_code == 502 and r.json()["success"] is False


def test_agent_tools(client: StackClient, stack: StackInfo) -> None:
    url = f"{stack.service_url}/agent-tools"
    auth = {"Authorization": f"Bearer {stack.secrets.webhook_secret}"}
    assert client.http.post(url, json={"tool": "status"}).status_code == 401
    r = client.http.post(url, json={}, headers=auth)
    assert r.status_code == 400
    assert r.json()["result"] == {"error": "tool parameter is required"}
    r = client.http.post(
        url, json={"tool": "status"}, headers={"X-EL-Secret": stack.secrets.webhook_secret}
    )
    assert r.json()["ok"] is True
    r = client.http.post(url, json={"tool": "list_repositories"}, headers=auth)
    assert r.json()["ok"] is True and r.json()["result"]["count"] >= 1


def test_unknown_route_is_json_404(client: StackClient, stack: StackInfo) -> None:
    r = client.http.get(f"{stack.service_url}/nope")
    assert r.status_code == 404 and r.json()["result"] == {"error": "Not Found"}


def test_upstream_timeout_retries_and_replies_once(client: StackClient) -> None:
    chat = new_chat()
    prompt = f"cursor-runner hangs {chat}"
    client.configure({"routes": {"cursor.iterateAsync": {"timeout_rate": 1.0, "timeout_ms": 3000}}})
    assert client.post_update(text_update(prompt, chat_id=chat)).status_code == 200
    errors = client.wait_for(
        "telegram.sendMessage",
        lambda c: to_chat(chat)(c) and "timed out" in c["json"].get("text", ""),
        timeout=30,
    )
    assert errors and errors[0]["json"]["text"].startswith("❌ Error: Failed to execute cursor")
    # The stand-in records a hung call when it finally answers, after the client gave up
    # (and after the last attempt removed the pending state, so its late callbacks are moot).
    attempts = client.wait_for(
        "cursor.iterateAsync", lambda c: c["json"].get("prompt") == prompt, count=4, timeout=8
    )
    assert len(attempts) == 4
    sent = [c for c in client.calls("telegram.sendMessage") if to_chat(chat)(c)]
    assert texts(sent) == [errors[0]["json"]["text"]]


def test_transcription_failure_retries_then_tells_the_user_once(client: StackClient) -> None:
    chat = new_chat()
    client.configure({"routes": {"elevenlabs.stt": {"error_rate": 1.0, "error_status": 503}}})
    update = voice_update(chat_id=chat)
    assert client.post_update(update).status_code == 200
    errors = client.wait_for(
        "telegram.sendMessage",
        lambda c: to_chat(chat)(c) and "Error transcribing audio" in c["json"].get("text", ""),
    )
    assert errors
    time.sleep(0.5)
    sent = [c for c in client.calls("telegram.sendMessage") if to_chat(chat)(c)]
    assert texts(sent) == [fmt.TRANSCRIBING_ACK, errors[0]["json"]["text"]]
    file_id = update["message"]["voice"]["file_id"]
    downloads = [c for c in client.calls("telegram.getFile") if c["json"].get("file_id") == file_id]
    assert len(downloads) == 4  # every attempt downloads again; none leaves its file behind
    assert list((Path(client.info.run_dir) / "tmp").iterdir()) == []
    assert not [c for c in client.calls("cursor.iterateAsync") if to_chat(chat)(c)]


def test_empty_transcript_is_not_retried(client: StackClient) -> None:
    chat = new_chat()
    client.configure({"transcript": ""})
    update = voice_update(chat_id=chat)
    assert client.post_update(update).status_code == 200
    replies = client.wait_for(
        "telegram.sendMessage",
        lambda c: to_chat(chat)(c) and c["json"].get("text") == fmt.TRANSCRIBE_EMPTY,
    )
    assert replies
    file_id = update["message"]["voice"]["file_id"]
    assert (
        len([c for c in client.calls("telegram.getFile") if c["json"].get("file_id") == file_id])
        == 1
    )
