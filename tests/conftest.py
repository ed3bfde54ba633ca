"""Shared fixtures: whole stacks of real processes on 127.0.0.1."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from perfaudit.refservice import switches as sw
from perfaudit.stack.client import StackClient
from perfaudit.stack.stack import FAST_STANDINS, Stack, StackInfo, StackOptions

# Retries back off quickly and cursor-runner calls time out after 0.5 s in tests; behaviour
# is the same as with the 2/4/8 s and 300 s defaults.
FAST_RETRIES = {"JOB_RETRY_DELAYS": "0.1,0.1,0.1", "CURSOR_RUNNER_TIMEOUT": "0.5"}


@pytest.fixture(scope="session", params=sorted(sw.VARIANTS))
def stack(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[StackInfo]:
    """The whole stack, once per variant: every functional test runs on both."""
    variant = request.param
    run_dir = tmp_path_factory.mktemp(f"stack-{variant}")
    options = StackOptions(
        run_dir=run_dir,
        switches=sw.VARIANTS[variant],
        standin_config=FAST_STANDINS,
        service_env=FAST_RETRIES,
    )
    with Stack(options) as info:
        yield info


@contextmanager
def fresh_client(stack: StackInfo) -> Iterator[StackClient]:
    """A client of ``stack`` whose stand-ins start from the fast defaults, whatever an
    earlier test configured, and lose their injected errors afterwards."""
    with StackClient(stack) as c:
        c.configure(FAST_STANDINS)
        yield c
        c.configure({"routes": {"*": {"error_rate": 0, "timeout_rate": 0}}})


@pytest.fixture
def client(stack: StackInfo) -> Iterator[StackClient]:
    with fresh_client(stack) as c:
        yield c


def run_dir_of(stack: StackInfo) -> Path:
    return Path(stack.run_dir)


@pytest.fixture(scope="session")
def stack_with(
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[Callable[..., StackInfo]]:
    """Stacks of any switch subset, started on first use and kept for the session.

    ``stack_with("phase3+new", switches, env)``: the same fast stand-ins and retries as
    ``stack``, plus the in-service probe (``PERFAUDIT_INSTRUMENT=1``: ``GET /__perfaudit/memory``)
    and ``env`` for the service and worker.
    """
    started: dict[str, tuple[Stack, StackInfo]] = {}

    def get(key: str, switches: frozenset[str], env: dict[str, str] | None = None) -> StackInfo:
        if key not in started:
            safe = "".join(ch if ch.isalnum() else "_" for ch in key)
            options = StackOptions(
                run_dir=tmp_path_factory.mktemp(f"stack-{safe}"),
                switches=switches,
                standin_config=FAST_STANDINS,
                service_env={**FAST_RETRIES, "PERFAUDIT_INSTRUMENT": "1", **(env or {})},
            )
            st = Stack(options)
            started[key] = (st, st.start())
        st, info = started[key]
        assert info.switches == tuple(sorted(switches)), f"{key} was started with other switches"
        return info

    try:
        yield get
    finally:
        for st, _info in started.values():
            st.stop()
