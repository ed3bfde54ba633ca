"""Scenario validation: every problem names its file, line and key."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from perfaudit.scenario import (
    ScenarioError,
    default_scenario_dir,
    load_scenario,
    load_scenarios,
    scenario_files,
)
from perfaudit.scenario.yamlnodes import cpu_count

REPO = Path(__file__).resolve().parents[1]

GOOD = """\
name: ok
request:
  path: /health
load:
  rate: 10
duration: 1s
"""


@pytest.fixture(autouse=True)
def _in_tmp(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)  # messages show paths relative to the cwd


def write(text: str, name: str = "s.yaml") -> Path:
    p = Path(name)
    p.parent.mkdir(parents=True, exist_ok=True)
    p.write_text(textwrap.dedent(text))
    return p


def error(text: str, name: str = "s.yaml") -> ScenarioError:
    with pytest.raises(ScenarioError) as info:
        load_scenario(write(text, name))
    return info.value


def lines_of(err: ScenarioError) -> list[str]:
    return str(err).splitlines()


def has(err: ScenarioError, line: int | None, key: str, fragment: str) -> bool:
    """Asserts (with the full error as the explanation) that one problem matches."""
    found = any(p.line == line and p.key == key and fragment in p.message for p in err.problems)
    assert found, f"no {line}/{key}/{fragment!r} in:\n{err}"
    return True


# -- the message format ----------------------------------------------------------------


def test_minimal_scenario_loads_with_defaults() -> None:
    sc = load_scenario(write(GOOD))
    assert sc.name == "ok" and sc.kind == "http"
    assert sc.target.service == "reference" and sc.target.variant == "optimized"
    assert sc.request is not None and sc.request.method == "GET"
    assert sc.request.is_success(204) and not sc.request.is_success(301)
    assert sc.warmup_s == 2.0 and sc.duration_s == 1.0
    assert sc.load.rate == 10.0 and sc.load.max_connections == 256
    assert sc.path == (Path.cwd() / "s.yaml").resolve()


def test_one_line_format_with_file_line_key() -> None:
    err = error(GOOD.replace("rate: 10", "rate: -5"))
    assert str(err) == "s.yaml:5: load.rate: must be a number > 0, got -5"
    assert (err.file, err.line, err.key) == ("s.yaml", 5, "load.rate")
    assert err.message == "must be a number > 0, got -5"


def test_unknown_key_suggests_the_close_one() -> None:
    err = error(GOOD.replace("rate: 10", "ratee: 10"))
    assert "s.yaml:5: load.ratee: unknown key (did you mean 'rate'?)" in lines_of(err)


def test_unknown_keys_at_every_level() -> None:
    err = error(
        """\
        name: ok
        nmae: x
        target: {servic: reference}
        request:
          path: /
          headrs: {}
        load: {rate: 1, proceses: 1}
        duration: 1s
        thresholds: {p95: 5}
        prepare: {pending: true}
        """
    )
    assert has(err, 2, "nmae", "did you mean 'name'")
    assert has(err, 3, "target.servic", "did you mean 'service'")
    assert has(err, 6, "request.headrs", "did you mean 'headers'")
    assert has(err, 7, "load.proceses", "did you mean 'processes'")
    assert has(err, 9, "thresholds.p95", "unknown key")
    assert has(err, 10, "prepare.pending", "did you mean 'pending_callbacks'")


def test_all_problems_of_a_file_in_line_order() -> None:
    err = error(
        """\
        name: Bad
        request: {path: nope}
        load: {rate: 0}
        duration: 0s
        """
    )
    assert [p.line for p in err.problems] == [1, 2, 3, 4]
    assert err.line == 1 and err.key == "name"
    assert len(lines_of(err)) == 4


# -- file-level problems ---------------------------------------------------------------


def test_yaml_syntax_error_is_one_line() -> None:
    err = error("name: a\nload: {rate: 5\n")
    assert len(lines_of(err)) == 1
    assert str(err).startswith("s.yaml:3: invalid YAML: ")


def test_yaml_syntax_error_bad_indent() -> None:
    err = error("name: a\nrequest:\n  path: /\n bad: 1\n")
    assert err.line == 4 and "invalid YAML" in err.message


def test_empty_file() -> None:
    assert str(error("")) == "s.yaml:1: file is empty (expected a scenario mapping)"
    assert "file is empty" in str(error("# only a comment\n"))


def test_top_level_not_a_mapping() -> None:
    err = error("- a\n- b\n")
    assert (
        err.line == 1
        and "top level must be a mapping" in err.message
        and "got a list" in err.message
    )


def test_missing_file() -> None:
    err = ScenarioError
    with pytest.raises(ScenarioError) as info:
        load_scenario("nope.yaml")
    err = info.value
    assert str(err) == "nope.yaml: no such file" and err.line is None


def test_duplicate_key_in_a_mapping() -> None:
    err = error(GOOD + "duration: 2s\n")
    assert has(err, 7, "duration", "duplicate key (first at line 6)")


# -- types and values ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("replace", "line", "key", "fragment"),
    [
        (("rate: 10", "rate: fast"), 5, "load.rate", "must be a number > 0, got 'fast'"),
        (("rate: 10", "rate: [1]"), 5, "load.rate", "got a list"),
        (("rate: 10", "rate: true"), 5, "load.rate", "got true"),
        (("name: ok", "name: 5"), 1, "name", "must be a string, got 5"),
        (("name: ok", "name: Web_Hook"), 1, "name", "lowercase letters, digits and dashes"),
        (("duration: 1s", "duration: 0"), 6, "duration", "must be a duration > 0"),
        (("duration: 1s", "duration: 5 parsecs"), 6, "duration", "like 500ms"),
        (("duration: 1s", "duration: 1s\nwarmup: -2s"), 7, "warmup", "duration >= 0"),
        (("path: /health", "path: health"), 3, "request.path", "must start with /"),
        (("path: /health", "path: /a b"), 3, "request.path", "whitespace"),
        (("path: /health", "path: /\n  method: FETCH"), 4, "request.method", "must be one of GET"),
    ],
)
def test_wrong_values(replace: tuple[str, str], line: int, key: str, fragment: str) -> None:
    err = error(GOOD.replace(*replace))
    assert has(err, line, key, fragment)


def test_impossible_values() -> None:
    err = error(
        """\
        name: x
        request: {path: /}
        load:
          model: closed
          users: 0
          processes: 99
        duration: 1s
        thresholds:
          error_rate: 1.5
          p95_ms: -1
        """
    )
    assert has(err, 5, "load.users", "must be an integer >= 1, got 0")
    assert has(err, 6, "load.processes", f"number of CPUs ({cpu_count()}), got 99")
    assert has(err, 9, "thresholds.error_rate", "must be a number >= 0 and <= 1, got 1.5")
    assert has(err, 10, "thresholds.p95_ms", "> 0")


def test_durations_convert_to_seconds() -> None:
    sc = load_scenario(
        write(
            """\
            name: d
            request: {path: /}
            load: {model: closed, users: 2, think_time: [10ms, 1.5s]}
            warmup: 500ms
            duration: 1m
            """
        )
    )
    assert sc.warmup_s == 0.5 and sc.duration_s == 60.0
    assert sc.load.think_time_s == (0.01, 1.5) and sc.load.users == 2
    sc2 = load_scenario(write(GOOD.replace("duration: 1s", "duration: 2.5"), "t.yaml"))
    assert sc2.duration_s == 2.5


# -- required and exclusive keys -------------------------------------------------------


def test_missing_required_keys() -> None:
    err = error("description: nothing here\n")
    assert has(err, 1, "name", "required")
    assert has(err, 1, "request", "required for kind http")
    assert has(err, 1, "load", "required")


def test_missing_duration_for_constant_rate() -> None:
    err = error(GOOD.replace("duration: 1s\n", ""))
    assert has(err, 1, "duration", "required for the open model")


def test_rate_and_stages_are_exclusive() -> None:
    err = error(GOOD.replace("rate: 10", "rate: 10\n  stages: [{duration: 1s, target: 5}]"))
    assert has(err, 6, "load.stages", "mutually exclusive")


def test_stages_set_the_duration() -> None:
    text = """\
        name: ramp
        request: {path: /}
        load:
          stages:
            - {duration: 5s, target: 100}
            - {duration: 10s, target: 400}
        """
    sc = load_scenario(write(text))
    assert sc.duration_s == 15.0 and sc.load.stages == ((5.0, 100.0), (10.0, 400.0))
    assert load_scenario(write(text + "duration: 15s\n", "b.yaml")).duration_s == 15.0
    err = error(text + "duration: 10s\n", "c.yaml")
    assert has(err, 7, "duration", "must equal the sum of load.stages durations (15s)")


def test_bad_stage() -> None:
    err = error(
        """\
        name: ramp
        request: {path: /}
        load:
          stages:
            - {duration: 5s, target: 100}
            - {duration: 0s, targt: 4}
        """
    )
    assert has(err, 6, "load.stages[1].targt", "did you mean 'target'")
    assert has(err, 6, "load.stages[1].duration", "duration > 0")


def test_model_specific_keys() -> None:
    err = error(GOOD.replace("rate: 10", "rate: 10\n  users: 3"))
    assert has(err, 6, "load.users", "only for model: closed")
    err = error(GOOD.replace("rate: 10", "model: closed\n  rate: 10"), "b.yaml")
    assert has(err, 6, "load.rate", "only for model: open")
    assert has(err, 4, "load.users", "required for model: closed")


def test_body_keys_are_exclusive() -> None:
    err = error(GOOD.replace("path: /health", "path: /\n  json: {a: 1}\n  body: x"))
    assert has(err, 5, "request.body", "mutually exclusive (request.json is already given)")


def test_body_file_must_exist_and_resolves_relative_to_the_file() -> None:
    write("{}", "sub/payloads/p.json")
    sc = load_scenario(
        write(GOOD.replace("path: /health", "path: /\n  body_file: payloads/p.json"), "sub/s.yaml")
    )
    assert (
        sc.request is not None
        and sc.request.body_file == (Path.cwd() / "sub/payloads/p.json").resolve()
    )
    err = error(GOOD.replace("path: /health", "path: /\n  body_file: missing.json"))
    assert has(err, 4, "request.body_file", "no such file: missing.json")


def test_sections_must_match_the_kind() -> None:
    err = error(GOOD.replace("name: ok", "name: ok\nkind: job"))
    assert has(err, 3, "request", "only for kind http or flow (this scenario is kind job)")
    assert has(err, 1, "job", "required for kind job")
    err = error(GOOD.replace("name: ok", "name: ok\nkind: batch"), "b.yaml")
    assert has(err, 2, "kind", "must be one of http, job, redis-store, flow")


# -- target ----------------------------------------------------------------------------


def test_unknown_variant_and_switch() -> None:
    err = error(
        GOOD
        + textwrap.dedent(
            """\
        target:
          variant: phase4
          with: [redis-pol]
          without: [lean-logging, nope]
        """
        )
    )
    assert has(err, 8, "target.variant", "did you mean 'phase3'")
    assert has(err, 9, "target.with[0]", "did you mean 'redis-pool'")
    assert has(err, 10, "target.without[1]", "got 'nope'")


def test_reference_switches_resolve() -> None:
    sc = load_scenario(write(GOOD + "target: {variant: phase3, with: [redis-pool]}\n"))
    assert sc.target.switches == frozenset({"redis-pool"})
    assert sc.target.label() == "reference/phase3+redis-pool"


@pytest.mark.parametrize(
    ("url", "fragment"),
    [
        ("http://10.1.2.3:8000", "not a loopback address"),
        ("http://example.com", "not a loopback address"),
        ("https://127.0.0.1:8000", "must be an http:// URL"),
        ("http://127.0.0.1:8000/api", "no path"),
        ("http://127.0.0.1:99999", "not a valid URL"),
    ],
)
def test_external_url_must_be_loopback_http(url: str, fragment: str) -> None:
    err = error(GOOD + f"target:\n  service: external\n  url: {url}\n")
    assert has(err, 9, "target.url", fragment)


@pytest.mark.parametrize(
    "url", ["http://127.0.0.1:8000", "http://127.8.9.10", "http://localhost:1", "http://[::1]:80"]
)
def test_loopback_urls_are_accepted(url: str) -> None:
    sc = load_scenario(write(GOOD + f"target: {{service: external, url: '{url}'}}\n"))
    assert sc.target.service == "external" and sc.target.port is not None


def test_external_target_keys() -> None:
    err = error(GOOD + "target:\n  service: external\n  variant: phase3\n")
    assert has(err, 7, "target.url", "required for service: external")
    assert has(err, 9, "target.variant", "only for service: reference")
    err = error(GOOD + "target: {url: 'http://127.0.0.1:1'}\n", "b.yaml")
    assert has(err, 7, "target.url", "only for service: external")


def test_external_target_details() -> None:
    sc = load_scenario(
        write(
            GOOD + "target: {service: external, url: 'http://localhost:8000', start: 'sleep 9'}\n"
        )
    )
    assert sc.target.profile_process == "started" and sc.target.cwd == Path.cwd().resolve()
    assert sc.target.ready_path == "/" and sc.target.ready_timeout_s == 30.0
    err = error(
        GOOD + "target: {service: external, url: 'http://127.0.0.1:1', profile_process: started}\n",
        "b.yaml",
    )
    assert has(err, 7, "target.profile_process", "needs target.start")
    err = error(
        GOOD.replace("name: ok", "name: ok\nkind: job")
        + "target: {service: external, url: 'http://127.0.0.1:1'}\n",
        "c.yaml",
    )
    assert has(err, 8, "target.service", "needs the reference target")


def test_secrets_are_reference_only() -> None:
    err = error(
        GOOD.replace("path: /health", "path: /\n  headers: {X-S: '{{ secrets.webhook_secret }}'}")
        + "target: {service: external, url: 'http://127.0.0.1:1'}\n"
    )
    assert has(err, 4, "request.headers.X-S", "only available for the reference target")


# -- placeholders ----------------------------------------------------------------------


def test_unknown_and_malformed_placeholders() -> None:
    err = error(
        GOOD.replace(
            "path: /health",
            "path: /x/{{ seqq }}\n  json:\n    a: '{{ uuid }'\n    b: ['{{ secrets.nope }}']",
        )
    )
    assert has(err, 3, "request.path", "unknown placeholder {{ seqq }} (did you mean 'seq'?)")
    assert has(err, 5, "request.json.a", "malformed placeholder")
    assert has(err, 6, "request.json.b[0]", "unknown placeholder {{ secrets.nope }}")


def test_pending_id_needs_prepare() -> None:
    body = GOOD.replace("path: /health", "path: /\n  json: {requestId: '{{ pending_id }}'}")
    err = error(body)
    assert has(err, 4, "request.json.requestId", "needs prepare: {pending_callbacks: true}")
    sc = load_scenario(write(body + "prepare: {pending_callbacks: true}\n", "b.yaml"))
    assert sc.prepare.pending_callbacks


def test_job_needs_a_fresh_update_id() -> None:
    err = error(
        """\
        name: j
        kind: job
        job:
          update:
            update_id: 5
            message: {chat: {id: 1}, text: hi}
        load: {rate: 1}
        duration: 1s
        """
    )
    assert has(err, 5, "job.update.update_id", 'must be "{{ update_id }}"')


# -- standins --------------------------------------------------------------------------


def test_standins_checked_against_the_upstreams() -> None:
    err = error(
        GOOD
        + textwrap.dedent(
            """\
        standins:
          routes:
            telegram.sendMesage: {latency_ms: 5}
            telegram.sendMessage: {latency_ms: -5, error_rate: 2, latency: 1}
            "cursor.*": {error_status: 200}
          callback_delay_ms: abc
          callback_url: http://x
          seeed: 1
        """
        )
    )
    assert has(err, 9, "standins.routes.telegram.sendMesage", "did you mean 'telegram.sendMessage'")
    assert has(err, 10, "standins.routes.telegram.sendMessage.latency_ms", ">= 0, got -5")
    assert has(err, 10, "standins.routes.telegram.sendMessage.error_rate", "between 0 and 1")
    assert has(err, 10, "standins.routes.telegram.sendMessage.latency", "did you mean 'latency_ms'")
    assert has(err, 11, "standins.routes.cursor.*.error_status", "between 400 and 599")
    assert has(err, 12, "standins.callback_delay_ms", "expected a number")
    assert has(err, 13, "standins.callback_url", "set by the stack")
    assert has(err, 14, "standins.seeed", "did you mean 'seed'")


def test_standins_patch_kept_as_written() -> None:
    sc = load_scenario(
        write(GOOD + "standins: {seed: 3, routes: {'telegram.*': {latency_ms: 1}}}\n")
    )
    assert sc.standins == {"seed": 3, "routes": {"telegram.*": {"latency_ms": 1}}}


# -- many files ------------------------------------------------------------------------


def test_duplicate_names_across_files_name_both() -> None:
    write(GOOD, "d/a.yaml")
    write("# the same name\n" + GOOD, "d/b.yaml")
    with pytest.raises(ScenarioError) as info:
        load_scenarios(["d"])
    err = info.value
    assert str(err) == "d/b.yaml:2: name: duplicate scenario name 'ok' (also in d/a.yaml:1)"


def test_load_scenarios_reports_every_file() -> None:
    write(GOOD, "d/a.yaml")
    write("", "d/b.yaml")
    write("name: [x]\n", "d/c.yml")
    write("not: scanned\n", "d/sub/x.yaml")
    with pytest.raises(ScenarioError) as info:
        load_scenarios(["d"])
    assert {p.file for p in info.value.problems} == {"d/b.yaml", "d/c.yml"}


def test_default_scenario_dir_searches_upward(monkeypatch: pytest.MonkeyPatch) -> None:
    (Path("scenarios")).mkdir()
    Path("pyproject.toml").write_text("")
    Path("a/b").mkdir(parents=True)
    monkeypatch.chdir("a/b")
    assert default_scenario_dir() == Path("../..").resolve() / "scenarios"
    assert default_scenario_dir(Path("/")) == Path("scenarios")


# -- the shipped scenarios -------------------------------------------------------------

EXPECTED = {
    "health": "http",
    "webhook-text": "http",
    "webhook-voice": "http",
    "webhook-command": "http",
    "callback-success": "http",
    "callback-unknown": "http",
    "admin-webhook-info": "http",
    "agent-tools": "http",
    "telegram-job": "job",
    "redis-store": "redis-store",
    "e2e-flow": "flow",
}


def test_shipped_scenarios_validate() -> None:
    scenarios = load_scenarios([REPO / "scenarios"])
    assert {s.name: s.kind for s in scenarios} == EXPECTED
    assert default_scenario_dir(REPO / "tests") == REPO / "scenarios"
    assert all(f.parent == REPO / "scenarios" for f in scenario_files([REPO / "scenarios"]))
    total = sum(s.warmup_s + s.duration_s for s in scenarios)
    assert total <= 150  # all of them in ~2-3 minutes with the stack start-ups
    for s in scenarios:
        assert s.target.is_reference and s.target.variant == "optimized"
        assert s.thresholds.to_dict(), s.name
    by = {s.name: s for s in scenarios}
    assert by["health"].thresholds.p95_ms == 10
    assert by["redis-store"].thresholds.p95_ms == 50
    assert by["e2e-flow"].thresholds.e2e_p95_ms is not None
    assert by["callback-success"].prepare.pending_callbacks


def test_example_external_validates() -> None:
    sc = load_scenario(REPO / "scenarios/examples/external.yaml")
    assert sc.target.service == "external" and sc.target.start and sc.target.url
    assert sc.target.cwd == (REPO / "scenarios/examples").resolve()


def test_to_dict_is_json() -> None:
    import json

    for sc in load_scenarios([REPO / "scenarios"]):
        data = json.loads(json.dumps(sc.to_dict()))
        assert data["name"] == sc.name and data["load"]["model"] == sc.load.model


@pytest.mark.parametrize(
    "extra",
    [
        "request: null",
        "load: 5",
        "target: []",
        "target: {service: external}",
        "thresholds: x",
        "thresholds: {p95_ms: .inf}",
        "standins: {routes: 5}",
        "standins: {routes: {telegram.sendMessage: 5}}",
        "standins: [1]",
        "tags: {a: 1}",
        "prepare: {pending_callbacks: maybe}",
        "1: a",
        "kind: job\njob: {update: 5}",
        "kind: job\njob: {}",
        "kind: flow",
        "kind: redis-store\nredis_store: {operations: [], payload_bytes: 1}",
        "kind: redis-store\nredis_store: {operations: [store, store, drop]}",
        "warmup: [1]",
        "description: {a: 1}",
        "base: &b {rate: 1}\nx: {<<: *b}",
        "when: !!binary aGVsbG8=",
    ],
)
def test_malformed_sections_give_scenario_errors(extra: str) -> None:
    # Only ScenarioError, whatever the shape; each problem has a line and a message.
    text = GOOD.replace("request:\n  path: /health\n", "") if extra.startswith("request") else GOOD
    err = error(text + extra + "\n")
    assert all(p.line and p.message for p in err.problems), str(err)


@pytest.mark.parametrize(
    "request_extra",
    [
        "headers: [1]",
        "headers: {'bad name': x}",
        "headers: {X-A: [1]}",
        "headers: {X-A: '{{ x }}', x-a: b}",
        "json: 5",
        "json: {'{{ seq }}': 1}",
        "expect_status: []",
        "expect_status: [200, 700]",
        "body: 5",
        "body_file: [a]",
        "method: 5",
    ],
)
def test_malformed_requests_give_scenario_errors(request_extra: str) -> None:
    err = error(GOOD.replace("path: /health", "path: /health\n  " + request_extra))
    assert all(p.line == 4 and p.key.startswith("request.") for p in err.problems), str(err)


@pytest.mark.parametrize(
    "load",
    [
        "{stages: 5}",
        "{stages: [5]}",
        "{stages: [{duration: 1s, target: 0}]}",
        "{model: closed, users: 1, think_time: [1]}",
        "{model: closed, users: 1, think_time: [2s, 1s]}",
        "{model: closed, users: 1, processes: 2}",
        "{model: sideways}",
        "{rate: 1, max_connections: 0}",
    ],
)
def test_malformed_load_gives_scenario_errors(load: str) -> None:
    if "processes: 2" in load and cpu_count() < 2:
        pytest.skip("needs 2 CPUs")
    err = error(GOOD.replace("load:\n  rate: 10", f"load: {load}"))
    assert any(p.key.startswith("load") and p.line == 4 for p in err.problems), str(err)


def test_yaml_merge_keys_work() -> None:
    sc = load_scenario(
        write(
            """\
            name: m
            request: {path: /}
            load:
              <<: {rate: 7}
              processes: 1
            duration: 1s
            """
        )
    )
    assert sc.load.rate == 7.0


def test_load_scenarios_takes_one_path_too() -> None:
    write(GOOD, "d/a.yaml")
    assert [s.name for s in load_scenarios("d")] == ["ok"]
    assert [s.name for s in load_scenarios(Path("d/a.yaml"))] == ["ok"]
