"""Formatting rules of spec §2.4 and §3; every case runs with text-fastpath on and off."""

from __future__ import annotations

import pytest

from perfaudit.refservice import formatting as f

pytestmark = pytest.mark.parametrize("fast", [False, True], ids=["phase3", "fastpath"])


# --- clean -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        (None, ""),
        ("", ""),
        ("   \n\t ", ""),
        ("\x1b[31mred\x1b[0m text", "red text"),
        ("\x1b[?25lhidden cursor\x1b[?25h", "hidden cursor"),
        ("\x1b[1;32mok\x1b[K", "ok"),
        ("a\r\nb\r\nc", "a\nb\nc"),
        ("lone\rcarriage", "lone\rcarriage"),
        ("  padded \r\n", "padded"),
        ("\x1b[0m  \r\n", ""),
    ],
)
def test_clean(fast: bool, raw: str | None, expected: str) -> None:
    assert f.clean(raw, fast=fast) == expected


def test_escape_html_order_and_idempotent_input(fast: bool) -> None:
    assert f.escape_html("<b>a & b</b> > &amp;", fast=fast) == (
        "&lt;b&gt;a &amp; b&lt;/b&gt; &gt; &amp;amp;"
    )
    assert f.escape_html("plain", fast=fast) == "plain"
    assert f.escape_html("", fast=fast) == ""


# --- normalize_result -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (True, True),
        ("true", True),
        (1, True),
        ("1", True),
        (False, False),
        ("false", False),
        (0, False),
        ("0", False),
        (None, False),
        ("yes", False),
        (2, False),
        ("TRUE", False),
    ],
)
def test_success_truthiness(fast: bool, value: object, expected: bool) -> None:
    assert f.normalize_result({"success": value}).success is expected


def test_success_missing_is_false(fast: bool) -> None:
    assert f.normalize_result({}).success is False


def test_normalize_camel_case(fast: bool) -> None:
    r = f.normalize_result(
        {
            "success": True,
            "requestId": "telegram-1-abcd",
            "repository": "repo",
            "branchName": "dev",
            "output": "out",
            "error": None,
            "exitCode": 2,
            "duration": "45231ms",
            "timestamp": "2025-01-01T00:01:00.000Z",
            "iterations": 3,
            "maxIterations": 10,
        }
    )
    assert r == f.CallbackResult(
        success=True,
        request_id="telegram-1-abcd",
        repository="repo",
        branch_name="dev",
        output="out",
        error=None,
        exit_code=2,
        duration="45231ms",
        timestamp="2025-01-01T00:01:00.000Z",
        iterations=3,
        max_iterations=10,
    )


def test_normalize_snake_case_and_defaults(fast: bool) -> None:
    r = f.normalize_result(
        {"success": "false", "request_id": "x", "branch_name": "b", "error": "boom"}
    )
    assert (r.success, r.request_id, r.branch_name, r.error) == (False, "x", "b", "boom")
    assert (r.iterations, r.max_iterations, r.output, r.exit_code) == (0, 25, "", 0)
    assert (r.repository, r.duration, r.timestamp) == (None, None, None)
    snake = f.normalize_result({"exit_code": 3, "max_iterations": 7, "output": None})
    assert (snake.exit_code, snake.max_iterations, snake.output) == (3, 7, "")


def test_normalize_camel_wins_over_snake(fast: bool) -> None:
    r = f.normalize_result({"requestId": "camel", "request_id": "snake"})
    assert r.request_id == "camel"


# --- format_output / format_warnings ---------------------------------------------------------


@pytest.mark.parametrize(("debug", "limit"), [(True, 3500), (False, 4000)])
def test_output_exactly_at_limit_is_not_truncated(fast: bool, debug: bool, limit: int) -> None:
    text = "x" * limit
    out = f.format_output(text, debug=debug, fast=fast)
    assert out == (f"\n📝 Output:\n<pre><code>{text}</code></pre>" if debug else text)


@pytest.mark.parametrize(("debug", "limit"), [(True, 3500), (False, 4000)])
def test_output_one_over_limit_is_truncated(fast: bool, debug: bool, limit: int) -> None:
    text = "y" * limit + "Z"
    out = f.format_output(text, debug=debug, fast=fast)
    kept = "y" * limit
    if debug:
        assert out == f"\n📝 Output (truncated):\n<pre><code>{kept}\n...</code></pre>"
    else:
        assert out == f"{kept}\n..."


def test_output_limit_counts_cleaned_text(fast: bool) -> None:
    # ANSI codes and surrounding blanks do not count towards the limit.
    text = "\x1b[32m" + "a" * 4000 + "\x1b[0m\r\n  "
    assert f.format_output(text, debug=False, fast=fast) == "a" * 4000


def test_warnings(fast: bool) -> None:
    assert f.format_warnings("warn", fast=fast) == "\n⚠️ Warnings:\n<pre><code>warn</code></pre>"
    at_limit = "w" * 500
    assert f.format_warnings(at_limit, fast=fast) == (
        f"\n⚠️ Warnings:\n<pre><code>{at_limit}</code></pre>"
    )
    over = "w" * 500 + "tail"
    assert f.format_warnings(over, fast=fast) == (
        f"\n⚠️ Warnings:\n<pre><code>{'w' * 500}...</code></pre>"
    )


# --- format_success / format_error -------------------------------------------------------------


def test_success_debug_full(fast: bool) -> None:
    r = f.normalize_result(
        {
            "success": True,
            "output": "Created README.md\n",
            "error": "\x1b[33mdeprecated\x1b[0m",
            "iterations": 3,
            "duration": "45231ms",
        }
    )
    assert f.format_success(r, debug=True, fast=fast) == (
        "✅ Cursor command completed successfully\n"
        "📊 Iterations: 3\n"
        "⏱ Duration: 45231ms\n"
        "\n📝 Output:\n<pre><code>Created README.md</code></pre>\n"
        "\n⚠️ Warnings:\n<pre><code>deprecated</code></pre>"
    )
    assert f.format_result(r, debug=True, fast=fast) == f.format_success(r, debug=True, fast=fast)


def test_success_debug_defaults(fast: bool) -> None:
    r = f.normalize_result({"success": True})
    assert f.format_success(r, debug=True, fast=fast) == (
        "✅ Cursor command completed successfully\n📊 Iterations: 0\n⏱ Duration: N/A"
    )


def test_success_plain_only_output_no_warnings(fast: bool) -> None:
    r = f.normalize_result({"success": True, "output": "done\r\n", "error": "warn"})
    assert f.format_success(r, debug=False, fast=fast) == "done"


def test_success_plain_empty_output_is_empty(fast: bool) -> None:
    r = f.normalize_result({"success": True, "output": "   "})
    assert f.format_success(r, debug=False, fast=fast) == ""


@pytest.mark.parametrize(
    ("error", "debug", "expected"),
    [
        ("\x1b[31mfailed\x1b[0m\r\n", True, "❌ Cursor command failed\n\nError: failed"),
        ("failed", False, "❌ failed"),
        (None, True, "❌ Cursor command failed\n\nError: Unknown error occurred"),
        (None, False, "❌ Unknown error occurred"),
        ("  ", False, "❌ Unknown error occurred"),
    ],
)
def test_format_error(fast: bool, error: str | None, debug: bool, expected: str) -> None:
    r = f.normalize_result({"success": False, "error": error})
    assert f.format_error(r, debug=debug, fast=fast) == expected
    assert f.format_result(r, debug=debug, fast=fast) == expected


# --- local commands, forwarding, audio ---------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("/start", f.HELP_TEXT),
        ("/help", f.HELP_TEXT),
        ("  /HELP me  ", f.HELP_TEXT),
        ("/startle", f.HELP_TEXT),  # a prefix match, as specified
        ("/status", f.STATUS_TEXT),
        ("/Status now", f.STATUS_TEXT),
        ("hello", f.DEFAULT_REPLY.format(text="hello")),
        ("Keep {braces}", f.DEFAULT_REPLY.format(text="Keep {braces}")),
        (None, f.DEFAULT_REPLY.format(text="")),
    ],
)
def test_local_command_reply(fast: bool, text: str | None, expected: str) -> None:
    assert f.local_command_reply(text, fast=fast) == expected


def test_default_reply_text(fast: bool) -> None:
    assert f.local_command_reply("Hi", fast=fast) == (
        "I received your message: Hi\n\n"
        "I'm still learning how to process messages. More features coming soon!"
    )


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("Add a README", True),
        ("/start", False),
        ("/HELP", False),
        ("/status please", False),
        ("/statusx", False),
        ("/other", True),
        (" /help", True),  # the regex is anchored on the raw text
        ("", False),
        ("  \n", False),
        (None, False),
    ],
)
def test_is_forwardable(fast: bool, text: str | None, expected: bool) -> None:
    assert f.is_forwardable(text, fast=fast) is expected


@pytest.mark.parametrize(
    ("message", "expected"),
    [
        ({"voice": {"file_id": "V1"}}, "V1"),
        ({"audio": {"file_id": "A1"}}, "A1"),
        ({"document": {"file_id": "D1", "mime_type": "audio/ogg"}}, "D1"),
        ({"document": {"file_id": "D2", "mime_type": "application/pdf"}}, None),
        ({"document": {"file_id": "D3"}}, None),
        ({"voice": {"file_id": ""}, "audio": {"file_id": "A2"}}, "A2"),
        ({"voice": {"file_id": "V2"}, "audio": {"file_id": "A3"}}, "V2"),
        ({"text": "hi"}, None),
        ({}, None),
    ],
)
def test_extract_audio_file_id(fast: bool, message: dict, expected: str | None) -> None:
    assert f.extract_audio_file_id(message) == expected


# --- texts -------------------------------------------------------------------------------------


def test_user_visible_texts(fast: bool) -> None:
    assert f.transcribe_error("bad") == (
        "❌ Error transcribing audio: bad. Please try again or send a text message."
    )
    long = "e" * 4001
    assert f.transcribe_error(long) == f.TRANSCRIBE_ERROR.format(error="e" * 4000 + "...")
    assert f.transcribe_error("e" * 4000) == f.TRANSCRIBE_ERROR.format(error="e" * 4000)
    assert f.CALLBACK_RESULT_ERROR.format(error="x") == (
        "❌ Error processing cursor command result: x"
    )
    assert f.CURSOR_ERROR.format(error="HTTP 500: boom") == (
        "❌ Error: Failed to execute cursor command. HTTP 500: boom"
    )
    assert f.YOU_SELECTED.format(data="run tests") == "You selected: run tests"
    assert f.FORMAT_FAILED_FALLBACK == (
        "⚠️ Command completed but failed to format response. Check logs for details."
    )
    assert f.ERROR_PROCESSING_MESSAGE.format(error="m") == (
        "Sorry, I encountered an error processing your message: m"
    )
