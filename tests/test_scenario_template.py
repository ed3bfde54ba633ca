"""Per-request templating: unique and disjoint ids, numbers stay numbers, compiled once."""

from __future__ import annotations

import json
import pickle
import textwrap
from pathlib import Path

import pytest

from perfaudit.scenario import (
    RequestContext,
    RunIds,
    ScenarioError,
    compile_job,
    compile_request,
    load_scenario,
)
from perfaudit.scenario.model import Scenario

REPO = Path(__file__).resolve().parents[1]
SECRETS = {
    "webhook_secret": "wh-secret",
    "telegram_webhook_secret": 'tg"secret',  # a quote: must be JSON-escaped where it lands
    "telegram_bot_token": "1:abc",
    "elevenlabs_api_key": "el",
}


def scenario(name: str) -> Scenario:
    return load_scenario(REPO / "scenarios" / f"{name}.yaml")


def write(tmp_path: Path, text: str, name: str = "s.yaml") -> Scenario:
    p = tmp_path / name
    p.write_text(textwrap.dedent(text))
    return load_scenario(p)


def bodies(
    sc: Scenario, n: int, index: int = 0, processes: int = 1, run: RunIds | None = None
) -> list[dict]:
    req = compile_request(sc, SECRETS)
    ctx = req.context(index, processes, run or RunIds.new())
    out = []
    for _ in range(n):
        ctx.next()
        out.append(json.loads(req.render(ctx)[2]))
    return out


def test_webhook_text_renders_json_with_numeric_ids() -> None:
    sc = scenario("webhook-text")
    req = compile_request(sc, SECRETS, host="127.0.0.1:8000")
    ctx = req.context()
    ctx.next()
    path, headers, body = req.render(ctx)
    assert path == b"/telegram/webhook"
    assert (b"X-Telegram-Bot-Api-Secret-Token", b'tg"secret') in headers
    assert (b"Content-Type", b"application/json") in headers
    doc = json.loads(body)
    assert isinstance(doc["update_id"], int) and doc["update_id"] > 0
    msg = doc["message"]
    assert msg["message_id"] == 0 and isinstance(msg["date"], int)
    assert msg["chat"]["id"] == msg["from"]["id"]  # one value per request, however often used
    assert msg["text"] == "Add a README to the repo" and msg["from"]["is_bot"] is False

    raw = req.wire(ctx)
    head, _, rest = raw.partition(b"\r\n\r\n")
    assert head.startswith(b"POST /telegram/webhook HTTP/1.1\r\nHost: 127.0.0.1:8000\r\n")
    assert f"Content-Length: {len(body)}".encode() in head and rest == body


def test_ids_unique_per_request() -> None:
    docs = bodies(scenario("webhook-text"), 500)
    assert len({d["update_id"] for d in docs}) == 500
    assert len({d["message"]["chat"]["id"] for d in docs}) == 500
    assert [d["message"]["message_id"] for d in docs] == list(range(500))


def test_ids_disjoint_across_processes() -> None:
    sc = scenario("webhook-text")
    run = RunIds.new()
    seen: list[set[int]] = []
    for i in range(3):
        docs = bodies(sc, 200, index=i, processes=3, run=run)
        seen.append({d["update_id"] for d in docs})
        assert {d["message"]["message_id"] for d in docs} == set(range(i, 600, 3))
    assert len(seen[0] | seen[1] | seen[2]) == 600


def test_update_ids_differ_between_runs() -> None:
    sc = scenario("webhook-text")
    a = bodies(sc, 5, run=RunIds.new())
    b = bodies(sc, 5, run=RunIds(id_base=RunIds.new().id_base + 10**6, salt=1, uuid_base=2, unix=3))
    assert not {d["update_id"] for d in a} & {d["update_id"] for d in b}


def test_string_placeholders_and_uuid_request_id(tmp_path: Path) -> None:
    sc = write(
        tmp_path,
        """\
        name: t
        request:
          method: post
          path: /items/{{ seq }}?r={{ request_id }}
          headers: {X-Id: "{{ uuid }}", X-Env: "{{ env.PERF_TEST_VAR }}"}
          json:
            id: "{{ uuid }}"
            label: "n{{ seq }} at {{ now }}"
            request: "{{ request_id }}"
            list: ["{{ seq }}", 1.5, null, true]
        load: {rate: 1}
        duration: 1s
        """,
    )
    req = compile_request(sc, environ={"PERF_TEST_VAR": "v 1"})
    assert req.method == "POST"
    ctx = req.context(run=RunIds.new())
    uuids, rids = set(), set()
    for k in range(100):
        ctx.next()
        path, headers, body = req.render(ctx)
        doc = json.loads(body)
        hdr = dict(headers)
        assert hdr[b"X-Id"].decode() == doc["id"] and hdr[b"X-Env"] == b"v 1"
        assert path.decode().startswith(f"/items/{k}?r={doc['request']}")
        assert doc["label"].startswith(f"n{k} at ") and doc["list"] == [k, 1.5, None, True]
        assert len(doc["id"]) == 36 and doc["id"][14] == "4" and doc["id"][19] in "89ab"
        assert doc["request"].startswith("telegram-") and len(doc["request"].split("-")[2]) == 8
        uuids.add(doc["id"])
        rids.add(doc["request"])
    assert len(uuids) == 100 and len(rids) == 100


def test_missing_env_names_file_line_key(tmp_path: Path) -> None:
    sc = write(
        tmp_path,
        """\
        name: t
        request:
          path: /
          headers:
            X-Token: "{{ env.PERF_SURELY_UNSET }}"
        load: {rate: 1}
        duration: 1s
        """,
    )
    with pytest.raises(ScenarioError) as info:
        compile_request(sc, environ={})
    err = info.value
    assert err.line == 5 and err.key == "request.headers.X-Token"
    assert "PERF_SURELY_UNSET is not set" in str(err) and str(err).startswith(str(err.file) + ":5:")


def test_pending_ids_match_the_seed_list() -> None:
    sc = scenario("callback-success")
    run = RunIds.new()
    req = compile_request(sc, SECRETS)
    ctx = req.context(1, 2, run)
    for _ in range(10):
        ctx.next()
        doc = json.loads(req.render(ctx)[2])
        assert doc["requestId"] == run.pending_id(ctx.seq)
    assert len({run.pending_id(s) for s in range(1000)}) == 1000
    assert sc.expected_requests() == int(30 * 10) + 1


def test_body_file_is_templated(tmp_path: Path) -> None:
    (tmp_path / "payloads").mkdir()
    (tmp_path / "payloads/u.json").write_text('{"update_id": {{ update_id }}, "n": "{{ seq }}"}')
    sc = write(
        tmp_path,
        """\
        name: t
        request: {method: POST, path: /, body_file: payloads/u.json}
        load: {rate: 1}
        duration: 1s
        """,
    )
    req = compile_request(sc)
    ctx = req.context()
    ctx.next()
    _, headers, body = req.render(ctx)
    assert json.loads(body)["n"] == "0" and (b"Content-Type", b"application/json") in headers


def test_static_request_is_fixed_bytes() -> None:
    req = compile_request(scenario("health"), host="127.0.0.1:1")
    assert not req.dynamic
    out = req.request_factory()(0, 1)
    assert out == b"GET /health HTTP/1.1\r\nHost: 127.0.0.1:1\r\nContent-Length: 0\r\n\r\n"


def test_request_factory_is_picklable_and_per_process() -> None:
    req = compile_request(scenario("agent-tools"), SECRETS, host="h:1")
    factory = pickle.loads(pickle.dumps(req.request_factory(RunIds.new())))
    a, b = factory(0, 2), factory(1, 2)
    assert callable(a) and callable(b)
    ids = {
        json.loads(f().partition(b"\r\n\r\n")[2])["conversation_id"]
        for f in (a, b)
        for _ in range(50)
    }
    assert len(ids) == 100


def test_job_update_renders() -> None:
    t = compile_job(scenario("telegram-job"))
    ctx = RequestContext(0, 1, RunIds.new(), t.needs)
    ctx.next()
    doc = json.loads(t.render(ctx.values))
    assert isinstance(doc["update_id"], int) and doc["message"]["chat"]["id"] == doc["update_id"]


def test_render_is_fast() -> None:
    import timeit

    req = compile_request(scenario("webhook-text"), SECRETS, host="127.0.0.1:8000")
    ctx = req.context()

    def one() -> bytes:
        ctx.next()
        return req.wire(ctx)

    per = min(timeit.repeat(one, number=20000, repeat=3)) / 20000
    assert per < 20e-6  # ~2 µs measured; generous for loaded CI machines


def test_header_value_with_line_break_is_refused(tmp_path: Path) -> None:
    sc = write(
        tmp_path,
        """\
        name: t
        request:
          path: /
          headers: {X-A: "{{ env.PERF_X }}"}
        load: {rate: 1}
        duration: 1s
        """,
    )
    with pytest.raises(ScenarioError) as info:
        compile_request(sc, environ={"PERF_X": "a\r\nX-Injected: 1"})
    assert info.value.line == 4 and info.value.key == "request.headers.X-A"
