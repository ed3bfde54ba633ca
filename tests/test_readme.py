"""The README's examples are what a new user pastes first: they must be valid."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from perfaudit.scenario import load_scenario

README = Path(__file__).resolve().parents[1] / "README.md"
# Scenario examples (other YAML, such as a CI workflow, is not a scenario).
YAML_BLOCKS = [
    block
    for block in re.findall(r"```yaml\n(.*?)```", README.read_text(), re.S)
    if block.startswith("name:") and re.search(r"^load:", block, re.M)
]


def test_readme_opens_with_the_two_commands() -> None:
    first_block = re.search(r"```sh\n(.*?)```", README.read_text(), re.S)
    assert first_block is not None
    commands = [line.split("#")[0].strip() for line in first_block.group(1).splitlines()]
    assert commands[:2] == ["make run", "make test"]


@pytest.mark.parametrize("index", range(len(YAML_BLOCKS)))
def test_readme_scenario_examples_validate(index: int, tmp_path: Path) -> None:
    f = tmp_path / f"example{index}.yaml"
    f.write_text(YAML_BLOCKS[index])
    scenario = load_scenario(f)
    assert scenario.name
