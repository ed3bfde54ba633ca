"""Scenario files: YAML -> validated, typed :class:`Scenario` objects, and the per-request
templating the load generator uses. The format is documented in docs/scenario-format.md.

    scenarios = load_scenarios()                     # the repo's scenarios/*.yaml
    sc = load_scenario("scenarios/webhook-text.yaml")
    req = compile_request(sc, stack_info.secrets, host="127.0.0.1:8000")
    LoadConfig(..., request_factory=req.request_factory(RunIds.new()))

Problems raise :class:`ScenarioError`; ``str(err)`` is one ``file:line: key: message``
line per problem.
"""

from perfaudit.scenario.errors import Problem, ScenarioError
from perfaudit.scenario.loader import (
    UnknownScenarioError,
    default_scenario_dir,
    duplicate_names,
    load_scenario,
    load_scenarios,
    scenario_files,
    select,
)
from perfaudit.scenario.model import (
    KINDS,
    JobSpec,
    Kind,
    LoadSpec,
    Prepare,
    RedisStoreSpec,
    RequestSpec,
    Scenario,
    Target,
    Thresholds,
)
from perfaudit.scenario.template import (
    CompiledRequest,
    RequestContext,
    RequestFactory,
    RunIds,
    Template,
    compile_job,
    compile_request,
)

__all__ = [
    "UnknownScenarioError",
    "select",
    "KINDS",
    "CompiledRequest",
    "JobSpec",
    "Kind",
    "LoadSpec",
    "Prepare",
    "Problem",
    "RedisStoreSpec",
    "RequestContext",
    "RequestFactory",
    "RequestSpec",
    "RunIds",
    "Scenario",
    "ScenarioError",
    "Target",
    "Template",
    "Thresholds",
    "compile_job",
    "compile_request",
    "default_scenario_dir",
    "duplicate_names",
    "load_scenario",
    "load_scenarios",
    "scenario_files",
]
