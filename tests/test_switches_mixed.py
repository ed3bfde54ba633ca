"""Mixed switch subsets behave like phase3 and optimized: a few functional tests on each.

``phase3+new`` is phase3 with only the five newer switches on; ``optimized-new`` is optimized
with those five off. The tests are the functional suite's own (tests/test_refservice_flow.py),
picked for the paths the newer switches change: forwarding (redis-pipeline), voice and button
presses (concurrent-awaits, backpressure), admin calls (response-cache), and retries.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest
import test_refservice_flow as flow
from conftest import fresh_client
from test_switches_effects import NEW_SWITCHES

from perfaudit.refservice import switches as sw
from perfaudit.stack.client import StackClient
from perfaudit.stack.stack import StackInfo

SUBSETS = {
    "phase3+new": NEW_SWITCHES,
    "optimized-new": sw.VARIANTS["optimized"] - NEW_SWITCHES,
}


@pytest.fixture(scope="module", params=sorted(SUBSETS))
def mixed_stack(request: pytest.FixtureRequest, stack_with: Callable[..., StackInfo]) -> StackInfo:
    return stack_with(request.param, SUBSETS[request.param])


@pytest.fixture
def mixed(mixed_stack: StackInfo) -> Iterator[StackClient]:
    with fresh_client(mixed_stack) as c:
        yield c


def test_text_message(mixed: StackClient) -> None:
    flow.test_text_message_ends_as_formatted_reply(mixed)


def test_voice_message(mixed: StackClient) -> None:
    flow.test_voice_message_is_transcribed_and_answered_by_voice(mixed)


def test_button_press(mixed: StackClient) -> None:
    flow.test_button_press_is_answered_and_forwarded(mixed)


def test_local_commands(mixed: StackClient) -> None:
    flow.test_local_commands(mixed)


def test_duplicated_update(mixed: StackClient) -> None:
    flow.test_duplicated_update_id_is_forwarded_once(mixed)


def test_upstream_failure(mixed: StackClient) -> None:
    flow.test_upstream_failure_retries_and_replies_once(mixed)


def test_transcription_failure(mixed: StackClient) -> None:
    flow.test_transcription_failure_retries_then_tells_the_user_once(mixed)


def test_admin_endpoints(mixed: StackClient, mixed_stack: StackInfo) -> None:
    flow.test_admin_endpoints(mixed, mixed_stack)
