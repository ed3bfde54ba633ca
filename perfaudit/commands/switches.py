"""``perfaudit switches``: the reference service's optimization switches."""

from __future__ import annotations


def switches() -> None:
    """List the optimization switches of the reference service."""
    from rich.table import Table

    from perfaudit.cli_ui import console
    from perfaudit.refservice import switches as sw

    table = Table(
        "switch", "Phase 3 finding", "phase3 does", "the switch changes it to", "code",
        "scenarios it touches",
    )  # fmt: skip
    for s in sw.CATALOG:
        table.add_row(s.name, s.finding, s.phase3, s.optimized, "\n".join(s.code),
                      ", ".join(s.touches))  # fmt: skip
    console.print(table)
