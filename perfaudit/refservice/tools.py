"""Agent tools (spec §1.4): ``ToolRouter.route(tool, args, conversation_id)``.

The Rails tool set is not in the mirror; these are the tools the bridge can answer from
what it has: its own status, and cursor-runner's repository list.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from perfaudit.refservice.clients.cursor_runner import CursorRunnerError
from perfaudit.refservice.services import Services


@dataclass(frozen=True)
class ToolResult:
    ok: bool
    say: str
    data: dict[str, Any] = field(default_factory=dict)


class ToolRouter:
    def __init__(self, services: Services) -> None:
        self.services = services

    async def route(self, tool: str, args: dict[str, Any], conversation_id: Any) -> ToolResult:
        if tool == "status":
            return ToolResult(True, "✅ I'm online and ready to help!", {"status": "online"})
        if tool == "list_repositories":
            try:
                _status, body = await self.services.cursor_runner.list_repositories()
            except CursorRunnerError as exc:
                return ToolResult(False, "I couldn't reach cursor-runner.", {"error": str(exc)})
            repos = list(body.get("repositories") or []) if isinstance(body, dict) else []
            say = (
                f"You have {len(repos)} repositories: {', '.join(repos)}"
                if repos
                else ("You have no repositories yet.")
            )
            return ToolResult(True, say, {"repositories": repos, "count": len(repos)})
        return ToolResult(
            False, f"Sorry, I don't know the tool '{tool}'.", {"error": f"Unknown tool: {tool}"}
        )
