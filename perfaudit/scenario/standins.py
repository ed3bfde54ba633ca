"""The ``standins:`` section: a patch for the stand-ins' control API, checked here with the
stand-ins' own route names, setting keys and value checks, but with file and line.
"""

from __future__ import annotations

from typing import Any

from yaml.nodes import MappingNode, Node

from perfaudit.scenario.yamlnodes import Checker, kind_name
from perfaudit.suggest import suggest
from perfaudit.upstreams import CONFIGURABLE_ROUTES, SETTING_KEYS, ConfigError, StandinConfig

# The stack points the callback at the service and sets its secret; a scenario must not.
STACK_OWNED: tuple[str, ...] = ("callback_url", "callback_secret")
GLOBAL_KEYS: tuple[str, ...] = tuple(
    k for k in StandinConfig.default().to_dict() if k != "routes" and k not in STACK_OWNED
)


def check(c: Checker, node: Node, key: str) -> dict[str, Any] | None:
    """The validated patch (as written), or None after recording problems."""
    known = ("routes", *GLOBAL_KEYS, *STACK_OWNED)
    m = c.mapping(node, key, known)
    if m is None:
        return None
    out: dict[str, Any] = {}
    ok = True
    for name, (kn, vn) in m.items():
        path = f"{key}.{name}"
        if name in STACK_OWNED:
            c.problem(kn, path, "set by the stack; not configurable in a scenario")
            ok = False
        elif name == "routes":
            routes = _routes(c, vn, path)
            ok &= routes is not None
            out["routes"] = routes
        else:
            value = c.plain(vn, path)
            ok &= _try(c, vn, path, {name: value})
            out[name] = value
    return out if ok else None


def _routes(c: Checker, node: Node, key: str) -> dict[str, Any] | None:
    if not isinstance(node, MappingNode):
        c.problem(node, key, f"must be a mapping of route name to settings, got {kind_name(node)}")
        return None
    out: dict[str, Any] = {}
    ok = True
    for kn, vn in node.value:
        route = str(kn.value)
        path = f"{key}.{route}"
        c.lines[path] = kn.start_mark.line + 1
        # Wildcards (telegram.*) are the stand-ins' own feature; an unknown pattern fails there.
        if not _try(c, kn, path, {"routes": {route: {}}}, route_hint=route):
            ok = False
            continue
        m = c.mapping(vn, path, SETTING_KEYS)
        if m is None:
            ok = False
            continue
        settings = {}
        for name, (_, sn) in m.items():
            value = c.plain(sn, f"{path}.{name}")
            ok &= _try(c, sn, f"{path}.{name}", {"routes": {route: {name: value}}})
            settings[name] = value
        out[route] = settings
    return out if ok else None


def _try(
    c: Checker, node: Node, path: str, patch: dict[str, Any], route_hint: str | None = None
) -> bool:
    try:
        StandinConfig.default().apply(patch)
    except ConfigError as exc:
        if route_hint is not None:
            hint = (
                suggest(route_hint, CONFIGURABLE_ROUTES)
                or f" (known: {', '.join(CONFIGURABLE_ROUTES)})"
            )
            c.problem(node, path, "unknown stand-in route" + hint)
        else:
            # The stand-ins prefix their message with their own key path; ours replaces it.
            msg = str(exc)
            msg = msg.split(": ", 1)[1] if ": " in msg else msg
            c.problem(node, path, msg.replace("between 0 and inf", ">= 0"))
        return False
    return True
