"""perfaudit.measure.callgrind without valgrind: the dump parser on hand-written files in
callgrind's format, and the helpers that find valgrind, build its command line and drive
callgrind_control (stand-in scripts play valgrind and callgrind_control here).

The format (valgrind's docs, "Callgrind Format Specification"): ``fn=``/``ob=`` set the
current function and object, ``(id) name`` defines a compressed name and ``(id)`` reuses
it (``cfn=``/``cob=`` define names in the same tables), a cost line is a position and the
events, and the cost line after ``calls=`` is the inclusive cost of that call, charged to
the callee, not self cost of the caller.
"""

from __future__ import annotations

import stat
import textwrap
import types
from pathlib import Path

import pytest

from perfaudit.measure import callgrind
from perfaudit.run.instructions import Reading, net_cost, split

HEADER = """\
# callgrind format
version: 1
creator: callgrind-3.19.0
pid: 4242
cmd:  python -m uvicorn app:app
part: 1
desc: Trigger: dump service
positions: line
events: Ir
summary: {summary}
"""


def dump_file(tmp_path: Path, body: str, summary: int = 0, name: str = "cg.4242.out.1") -> Path:
    path = tmp_path / name
    path.write_text(HEADER.format(summary=summary) + "\n" + textwrap.dedent(body))
    return path


# -- the parser ------------------------------------------------------------------------
def test_self_cost_per_function_with_its_object_and_the_summary(tmp_path: Path) -> None:
    path = dump_file(
        tmp_path,
        """\
        ob=/usr/lib/x86_64-linux-gnu/libc.so.6
        fl=./string/memcpy.S
        fn=memcpy
        10 100
        +2 20
        -1 3
        * 7

        ob=/root/.pyenv/versions/3.11.7/lib/libpython3.11.so.1.0
        fl=Python/ceval.c
        fn=_PyEval_EvalFrameDefault
        1200 5000

        totals: 5130
        """,
        summary=5130,
    )
    d = callgrind.parse(path)
    assert d.summary == 5130
    assert d.self_cost == {
        "memcpy [libc.so.6]": 130,  # every cost line counts, whatever its position form
        "_PyEval_EvalFrameDefault [libpython3.11.so.1.0]": 5000,
    }
    assert d.totals == 5130 and d.consistent()


def test_a_table_that_does_not_add_up_to_its_summary_is_not_consistent(tmp_path: Path) -> None:
    # The first dump of a process can carry calls open before its zero: 433k in one line
    # against a 5k summary. Its summary is the window; its table is not.
    path = dump_file(
        tmp_path,
        """        fn=find_name_in_mro
        * 433004
        fn=other
        1 5000
        totals: 438004
        """,
        summary=5000,
    )
    d = callgrind.parse(path)
    assert d.summary == 5000 and not d.consistent()


def test_instruction_positions_are_skipped_before_the_event(tmp_path: Path) -> None:
    path = tmp_path / "cg.1.out.1"
    path.write_text("positions: instr line\nevents: Ir\nsummary: 30\nfn=f\n0x10 12 10\n+4 * 20\n")
    assert callgrind.parse(path).self_cost == {"f": 30}


def test_compressed_names_defined_once_and_reused(tmp_path: Path) -> None:
    path = dump_file(
        tmp_path,
        """\
        ob=(1) /lib/libpython3.11.so.1.0
        fl=(1) Objects/dictobject.c
        fn=(1) _Py_dict_lookup
        10 40

        ob=(2) /lib/_json.cpython-311-x86_64-linux-gnu.so
        fl=(2) Modules/_json.c
        fn=(2) encoder_listencode_obj
        5 300

        ob=(1)
        fl=(1)
        fn=(1)
        11 2
        """,
    )
    assert callgrind.parse(path).self_cost == {
        "_Py_dict_lookup [libpython3.11.so.1.0]": 42,
        "encoder_listencode_obj [_json.cpython-311-x86_64-linux-gnu.so]": 300,
    }


def test_file_ids_are_a_table_of_their_own(tmp_path: Path) -> None:
    """``fl=(1)`` and ``fn=(1)`` are different names: files must not overwrite functions."""
    path = dump_file(
        tmp_path,
        """\
        ob=(1) /lib/libc.so.6
        fl=(1) ./malloc/malloc.c
        fn=(1) malloc
        3 10
        fi=(2) ./malloc/arena.c
        4 1
        fe=(1)
        5 1

        fl=(3) ./string/strlen.S
        fn=(1)
        7 5
        """,
    )
    assert callgrind.parse(path).self_cost == {"malloc [libc.so.6]": 17}


def test_the_cost_line_after_calls_is_the_callee_s_inclusive_cost(tmp_path: Path) -> None:
    path = dump_file(
        tmp_path,
        """\
        ob=(1) /lib/libpython3.11.so.1.0
        fl=(1) Python/ceval.c
        fn=(1) _PyEval_EvalFrameDefault
        100 50
        cob=(2) /lib/_json.cpython-311-x86_64-linux-gnu.so
        cfi=(2) Modules/_json.c
        cfn=(2) encoder_call
        calls=5 120
        101 9000
        102 7

        ob=(2)
        fl=(2)
        fn=(2)
        120 900
        cfn=(1)
        calls=1 100
        * 4000
        * 1
        """,
    )
    d = callgrind.parse(path)
    # The caller keeps its own 50 + 7; the 9000 after calls= belongs to encoder_call
    # (whose own lines say 900 + 1) and the 4000 to the recursive eval loop call.
    assert d.self_cost == {
        "_PyEval_EvalFrameDefault [libpython3.11.so.1.0]": 57,
        "encoder_call [_json.cpython-311-x86_64-linux-gnu.so]": 901,
    }


def test_a_name_first_defined_by_cfn_or_cob_is_known_to_fn_and_ob(tmp_path: Path) -> None:
    path = dump_file(
        tmp_path,
        """\
        ob=(1) /lib/libpython3.11.so.1.0
        fl=(1) Python/ceval.c
        fn=(1) _PyEval_EvalFrameDefault
        1 10
        cob=(2) /lib/loop.cpython-311-x86_64-linux-gnu.so
        cfi=(2) uvloop/loop.c
        cfn=(2) uv_run
        calls=1 5
        1 500

        ob=(2)
        fl=(2)
        fn=(2)
        5 30
        """,
    )
    assert callgrind.parse(path).self_cost == {
        "_PyEval_EvalFrameDefault [libpython3.11.so.1.0]": 10,
        "uv_run [loop.cpython-311-x86_64-linux-gnu.so]": 30,
    }


def test_recursion_levels_are_merged_into_one_function(tmp_path: Path) -> None:
    path = dump_file(
        tmp_path,
        """\
        ob=(1) /lib/libpython3.11.so.1.0
        fl=(1) Python/ceval.c
        fn=(1) _PyEval_EvalFrameDefault
        10 100
        cfn=(2) _PyEval_EvalFrameDefault'2
        calls=1 10
        10 5000

        fn=(2)
        10 60
        cfn=(3) _PyEval_EvalFrameDefault'12
        calls=1 10
        10 800

        fn=(3)
        10 7
        """,
    )
    assert callgrind.parse(path).self_cost == {
        "_PyEval_EvalFrameDefault [libpython3.11.so.1.0]": 167
    }


def test_first_event_is_taken_when_several_are_collected(tmp_path: Path) -> None:
    path = tmp_path / "cg.1.out"
    path.write_text(
        "events: Ir Dr Dw\nsummary: 30 9 4\n\nob=/lib/libc.so.6\nfn=memset\n1 20 5 3\n2 10 4 1\n"
    )
    d = callgrind.parse(path)
    assert (d.summary, d.self_cost) == (30, {"memset [libc.so.6]": 30})


def test_a_function_without_an_object_and_a_dump_without_summary(tmp_path: Path) -> None:
    path = tmp_path / "cg.1.out"
    path.write_text("events: Ir\n\nfn=0x0000000004936738\n0 70\n3\n")  # a cost-less line
    d = callgrind.parse(path)
    assert (d.summary, d.self_cost) == (0, {"0x0000000004936738": 70})


def test_summary_is_read_even_when_totals_differ(tmp_path: Path) -> None:
    path = dump_file(tmp_path, "fn=f\n1 900\ntotals: 900\n", summary=600)
    d = callgrind.parse(path)
    assert d.summary == 600 and d.self_cost == {"f": 900}


# -- finding valgrind --------------------------------------------------------------------
def script(path: Path, body: str) -> Path:
    path.write_text("#!/bin/sh\n" + body)
    path.chmod(path.stat().st_mode | stat.S_IXUSR)
    return path


@pytest.fixture
def fake_tools(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A valgrind and a callgrind_control of our own, found through PERFAUDIT_VALGRIND, and
    a PATH where neither is found otherwise."""
    bindir = tmp_path / "bin"
    bindir.mkdir()
    script(bindir / "valgrind", 'echo "valgrind-3.99.0"\n')
    monkeypatch.setenv(callgrind.VALGRIND_ENV, str(bindir / "valgrind"))
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))
    return bindir


def test_an_empty_override_hides_valgrind_with_an_install_hint(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv(callgrind.VALGRIND_ENV, "")
    assert callgrind.valgrind_binary() is None
    assert callgrind.version() is None
    [problem] = callgrind.missing()
    assert "valgrind is not installed" in problem and "apt-get install -y valgrind" in problem
    with pytest.raises(callgrind.CallgrindError, match="valgrind is not installed"):
        callgrind.prefix(Path("/nonexistent"))


def test_an_override_naming_no_file_is_missing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(callgrind.VALGRIND_ENV, str(tmp_path / "no-such-valgrind"))
    assert callgrind.valgrind_binary() is None
    assert callgrind.missing()


def test_without_override_valgrind_is_looked_up_on_path(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv(callgrind.VALGRIND_ENV, raising=False)
    script(tmp_path / "valgrind", "exit 0\n")
    script(tmp_path / "callgrind_control", "exit 0\n")
    monkeypatch.setenv("PATH", str(tmp_path))
    assert callgrind.valgrind_binary() == str(tmp_path / "valgrind")
    assert callgrind.control_binary() == str(tmp_path / "callgrind_control")
    assert callgrind.missing() == []


def test_callgrind_control_missing_is_named(fake_tools: Path) -> None:
    assert callgrind.valgrind_binary() == str(fake_tools / "valgrind")
    assert callgrind.control_binary() is None
    [problem] = callgrind.missing()
    assert problem.startswith("callgrind_control (part of valgrind) is not found")
    with pytest.raises(callgrind.CallgrindError, match="callgrind_control"):
        callgrind.zero(1)


def test_callgrind_control_beside_valgrind_is_preferred(
    fake_tools: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    script(fake_tools / "callgrind_control", "exit 0\n")
    other = tmp_path / "other"
    other.mkdir()
    script(other / "callgrind_control", "exit 0\n")
    monkeypatch.setenv("PATH", str(other))
    assert callgrind.control_binary() == str(fake_tools / "callgrind_control")
    assert callgrind.missing() == []


def test_version_is_valgrind_s_own_line(fake_tools: Path) -> None:
    assert callgrind.version() == "valgrind-3.99.0"
    script(fake_tools / "valgrind", "exit 1\n")  # says nothing
    assert callgrind.version() is None


def test_prefix_runs_callgrind_with_one_file_per_process(fake_tools: Path, tmp_path: Path) -> None:
    out = tmp_path / "reports" / "callgrind"
    cmd = callgrind.prefix(out)
    assert out.is_dir()
    assert cmd[0] == str(fake_tools / "valgrind")
    assert "--tool=callgrind" in cmd and "--vgdb=yes" in cmd
    assert f"--callgrind-out-file={out}/cg.%p.out" in cmd  # %p: the service and worker apart
    assert "--separate-threads=no" in cmd  # one count per process, threads summed


# -- driving callgrind_control -------------------------------------------------------------
def control_script(fake_tools: Path, body: str) -> None:
    """callgrind_control's stand-in: logs its arguments, then runs ``body``."""
    script(fake_tools / "callgrind_control", f'echo "$@" >> "{fake_tools}/calls.log"\n{body}')


def calls(fake_tools: Path) -> list[str]:
    return (fake_tools / "calls.log").read_text().splitlines()


def test_zero_passes_the_pid(fake_tools: Path) -> None:
    control_script(fake_tools, "exit 0\n")
    callgrind.zero(4242)
    assert calls(fake_tools) == ["--zero 4242"]


@pytest.mark.parametrize(
    "body",
    [
        'echo "Error: Callgrind task with PID/Name 4242 not detected."\n',
        'echo "No active callgrind runs detected."\n',
        "exit 3\n",
    ],
)
def test_a_failed_control_call_raises(fake_tools: Path, body: str) -> None:
    control_script(fake_tools, body)
    with pytest.raises(callgrind.CallgrindError, match=r"callgrind_control --zero 4242"):
        callgrind.zero(4242)


def test_a_control_call_that_hangs_times_out(
    fake_tools: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    control_script(fake_tools, "exec /bin/sleep 5\n")
    monkeypatch.setattr(callgrind, "CONTROL_TIMEOUT_S", 0.3)
    with pytest.raises(callgrind.CallgrindError, match="no answer in 0 s"):
        callgrind.zero(4242)


def test_dump_returns_the_new_complete_file(fake_tools: Path, tmp_path: Path) -> None:
    out = tmp_path / "cg"
    out.mkdir()
    (out / "cg.4242.out.1").write_text("summary: 1\ntotals: 1\n")  # an earlier window's
    (out / "cg.999.out.2").write_text("summary: 1\ntotals: 1\n")  # another process's
    control_script(
        fake_tools,
        f'printf "events: Ir\\nsummary: 77\\n\\nfn=f\\n1 77\\ntotals: 77\\n" > "{out}/cg.4242.out.2"\n',
    )
    path = callgrind.dump(4242, out, label="service")
    assert path == out / "cg.4242.out.2"
    assert calls(fake_tools) == ["--dump=service 4242"]
    assert callgrind.parse(path).summary == 77


def test_dump_waits_for_the_file_to_be_complete(fake_tools: Path, tmp_path: Path) -> None:
    out = tmp_path / "cg"
    out.mkdir()
    # The dump is written by the target after callgrind_control answers: half now, the
    # rest (with totals:) a moment later.
    control_script(
        fake_tools,
        f'printf "events: Ir\\nfn=f\\n" > "{out}/cg.7.out.1"\n'
        f'(/bin/sleep 0.4; printf "1 5\\ntotals: 5\\n" >> "{out}/cg.7.out.1") >/dev/null 2>&1 &\n',
    )
    path = callgrind.dump(7, out)
    assert path.read_text().endswith("totals: 5\n")


def test_dump_that_never_appears_raises(
    fake_tools: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    out = tmp_path / "cg"
    out.mkdir()
    control_script(fake_tools, "exit 0\n")
    clock = iter(range(0, 1000, 5))  # 5 s per look: the 10 s deadline passes at once
    monkeypatch.setattr(
        callgrind,
        "time",
        types.SimpleNamespace(monotonic=lambda: next(clock), sleep=lambda s: None),
    )
    with pytest.raises(callgrind.CallgrindError, match="did not appear"):
        callgrind.dump(7, out)


def test_complete_means_totals_or_summary_at_the_end(tmp_path: Path) -> None:
    f = tmp_path / "cg.1.out.1"
    f.write_text("events: Ir\nfn=f\n" + "1 1\n" * 3000)
    assert not callgrind._complete(f)
    f.write_text(f.read_text() + "totals: 3000\n")
    assert callgrind._complete(f)
    assert not callgrind._complete(tmp_path / "missing")


# -- the arithmetic of a window (perfaudit.run.instructions) ------------------------------
def test_split_spreads_requests_over_windows() -> None:
    assert split(40, 4) == [10, 10, 10, 10]
    assert split(10, 4) == [3, 3, 2, 2]


def test_idle_work_is_subtracted_per_second() -> None:
    # 1000 Ir per request; a background of 50 Ir/s over windows of 2 s and idle of 4 s.
    windows = [Reading(10 * 1000 + 100, {"f": 10_000, "timer": 100}, 2.0, 0)] * 2
    idle = [Reading(200, {"timer": 200}, 4.0, 0), Reading(200, {"timer": 200}, 4.0, 0)]
    c = net_cost("service", windows, [10, 10], idle)
    assert c.per_request == pytest.approx(1000)
    assert c.windows == [pytest.approx(1000)] * 2
    assert c.raw_per_request == pytest.approx(1010)
    assert (c.idle_rate, c.idle_unit) == (pytest.approx(50), "s")
    assert c.busy
    assert c.functions == {"f": 1000}  # the timer's work is subtracted away (below 0.5)


def test_a_polling_worker_is_charged_per_poll() -> None:
    # Idle: 10 Ir per poll, 100 polls/s; busy windows poll half as often.
    windows = [Reading(500 + 10 * 50, {}, 1.0, 50)]
    idle = [Reading(1000, {}, 1.0, 100), Reading(1000, {}, 1.0, 100)]
    c = net_cost("worker", windows, [5], idle)
    assert (c.per_request, c.idle_unit) == (pytest.approx(100), "poll")
    per_second = net_cost("service", windows, [5], idle)  # charged by time: too much
    assert per_second.per_request == pytest.approx(0)


def test_a_process_that_only_idled_is_not_busy() -> None:
    windows = [Reading(1003, {}, 1.0, 0)]
    idle = [Reading(1000, {}, 1.0, 0), Reading(1000, {}, 1.0, 0)]
    c = net_cost("worker", windows, [10], idle)
    assert c.per_request == pytest.approx(0.3) and not c.busy
