"""The config Structs: defaults, strictness, shape checks, placeholders."""

from __future__ import annotations

import signal
from typing import Any

import msgspec
import pytest
from hypothesis import given
from hypothesis import strategies as st

from actantd.config.issues import from_validation_error
from actantd.config.schema import (
    KIND_TYPES,
    PLACEHOLDERS,
    Backend,
    HealthCheck,
    McpServer,
    PermissionRules,
    Skill,
    Template,
    expand_argv,
    expand_env,
    kind_of,
    to_jsonable,
)
from actantd.errors import ConfigValidation

DESIGN_EXAMPLE: dict[str, Any] = {
    "version": "1.0",
    "name": "code-reviewer",
    "description": "Reviews pull requests",
    "backend": "claude-code",
    "launchMode": "Service",
    "skills": ["typescript-expert", "code-review"],
    "prompts": ["code-reviewer"],
    "mcpServers": ["filesystem"],
    "workflow": "trellis-standard",
    "permissions": "Standard",
    "restart": {"policy": "OnFailure", "maxRestarts": 5, "windowSeconds": 300},
}


def issue_text(doc: dict[str, Any], schema: type[Any] = Template) -> str:
    with pytest.raises(msgspec.ValidationError) as exc_info:
        msgspec.convert(doc, schema)
    return str(from_validation_error("templates/t.json", exc_info.value, schema))


def base(**fields: Any) -> dict[str, Any]:
    return {"version": "1.0", "name": "t", **fields}


def test_design_example_decodes_with_defaults() -> None:
    t = msgspec.convert(DESIGN_EXAMPLE, Template)
    assert t.backend == "claude-code"
    assert t.skills == ("typescript-expert", "code-review")
    assert t.mcp_servers == ("filesystem",)
    assert t.restart.policy == "OnFailure"
    assert t.restart.max_restarts == 5
    assert t.restart.initial_delay_ms == 500
    assert t.restart.max_delay_ms == 30_000
    assert t.restart.min_uptime_seconds == 1.0
    assert t.stop_signal == "SIGTERM"
    assert t.stop_signal_number == signal.SIGTERM
    assert t.stop_timeout_seconds == 10.0
    assert t.workspace_policy == "Persistent"
    assert t.health_check is None
    assert t.command is None


def test_minimal_template_defaults() -> None:
    t = msgspec.convert(base(), Template)
    assert (t.backend, t.launch_mode, t.permissions) == ("custom", "Service", "Standard")
    assert t.skills == () and t.workflow is None and t.env == {}


def test_to_jsonable_round_trips_and_uses_lists() -> None:
    t = msgspec.convert(DESIGN_EXAMPLE, Template)
    out = to_jsonable(t)
    assert out["skills"] == ["typescript-expert", "code-review"]
    assert out["mcpServers"] == ["filesystem"]
    assert out["restart"]["maxRestarts"] == 5
    assert msgspec.convert(out, Template) == t


def test_structs_are_frozen() -> None:
    t = msgspec.convert(DESIGN_EXAMPLE, Template)
    with pytest.raises(AttributeError):
        t.name = "other"  # type: ignore[misc]


def test_unknown_top_level_field_is_an_error_with_suggestion() -> None:
    text = issue_text(base(launchMod="Service"))
    assert text == "templates/t.json: $.launchMod: unknown field 'launchMod' (did you mean 'launchMode'?)"


def test_unknown_nested_field_is_an_error() -> None:
    text = issue_text(base(restart={"policy": "Always", "maxRestart": 3}))
    assert text == "templates/t.json: $.restart.maxRestart: unknown field 'maxRestart' (did you mean 'maxRestarts'?)"


def test_wrong_type_names_the_element() -> None:
    assert issue_text(base(skills=["a", 2])) == "templates/t.json: $.skills[1]: expected str, got int"


def test_invalid_enum_lists_allowed_values() -> None:
    text = issue_text(base(launchMode="Daemon"))
    assert text == "templates/t.json: $.launchMode: invalid value 'Daemon'; expected one of OneShot, Service"
    text = issue_text(base(restart={"policy": "Sometimes"}))
    assert text.startswith(
        "templates/t.json: $.restart.policy: invalid value 'Sometimes'; expected one of Always, Never, OnFailure"
    )


def test_permissions_preset_or_rules() -> None:
    assert msgspec.convert(base(permissions="ReadOnly"), Template).permissions == "ReadOnly"
    rules = msgspec.convert(base(permissions={"allow": ["Read"], "deny": ["Bash(rm:*)"]}), Template).permissions
    assert rules == PermissionRules(allow=("Read",), deny=("Bash(rm:*)",), ask=())
    text = issue_text(base(permissions="Lax"))
    assert "$.permissions: invalid value 'Lax'; expected one of Permissive, ReadOnly, Restricted, Standard" in text
    assert "$.permissions.allowed: unknown field 'allowed'" in issue_text(base(permissions={"allowed": []}))


def test_stop_signal_must_be_real() -> None:
    assert msgspec.convert(base(stopSignal="SIGINT"), Template).stop_signal_number == signal.SIGINT
    assert "$.stopSignal: unknown signal 'SIGTERMINATE'" in issue_text(base(stopSignal="SIGTERMINATE"))
    assert "unknown signal 'TERM'" in issue_text(base(stopSignal="TERM"))


def test_restart_delays_are_consistent() -> None:
    assert "$.restart.maxDelayMs: must be >= 'initialDelayMs'" in issue_text(
        base(restart={"initialDelayMs": 1000, "maxDelayMs": 10})
    )
    assert "$.restart.maxRestarts: expected int >= 0" in issue_text(base(restart={"maxRestarts": -1}))


def test_health_check_needs_exactly_one_probe() -> None:
    assert msgspec.convert({"port": 8080}, HealthCheck).host == "127.0.0.1"
    assert msgspec.convert({"command": ["true"]}, HealthCheck).failure_threshold == 3
    assert "exactly one of 'command' or 'port'" in issue_text(base(healthCheck={}))
    assert "$.healthCheck: a health check needs exactly one" in issue_text(
        base(healthCheck={"port": 1, "command": ["true"]})
    )
    assert "$.healthCheck.port: expected int <= 65535" in issue_text(base(healthCheck={"port": 70000}))


def test_command_must_not_be_empty() -> None:
    assert "$.command: expected array of length >= 1" in issue_text(base(command=[]))


@pytest.mark.parametrize(
    "doc",
    [
        {"command": "npx", "args": ["-y", "server"], "env": {"A": "1"}},
        {"type": "stdio", "command": "npx"},
        {"type": "http", "url": "https://example.com/mcp", "headers": {"Authorization": "Bearer x"}},
        {"type": "sse", "url": "http://localhost:9000/sse"},
    ],
)
def test_mcp_valid_shapes(doc: dict[str, Any]) -> None:
    server = msgspec.convert(base(**doc), McpServer)
    assert server.is_remote == (doc.get("type") in ("http", "sse"))


@pytest.mark.parametrize(
    ("doc", "reason"),
    [
        ({}, "needs either 'command'"),
        ({"type": "http"}, "needs a 'url'"),
        ({"type": "http", "url": "https://x", "command": "npx"}, "not 'command'"),
        ({"command": "npx", "url": "https://x"}, "need 'type': 'http'"),
        ({"type": "http", "url": "ftp://x"}, "$.url: must start with http"),
        ({"type": "websocket", "url": "https://x"}, "expected one of http, sse, stdio"),
    ],
)
def test_mcp_invalid_shapes(doc: dict[str, Any], reason: str) -> None:
    assert reason in issue_text(base(**doc), McpServer)


def test_backend_run_needs_prompt_placeholder() -> None:
    ok = msgspec.convert(base(executable="x", run=["x", "-p", "{prompt}"], materializer="codex"), Backend)
    assert ok.materializer == "codex"
    assert "$.run: must contain the {prompt} placeholder" in issue_text(base(run=["x", "-p"]), Backend)
    assert "$.materializer: invalid value 'vim'" in issue_text(base(materializer="vim"), Backend)


def test_markdown_kinds_need_content() -> None:
    assert msgspec.convert(base(content="# Hi"), Skill).content == "# Hi"
    assert issue_text(base(), Skill) == "templates/t.json: $: missing required field 'content'"


def test_kind_of() -> None:
    for kind, cls in KIND_TYPES.items():
        assert cls.__name__.lower().startswith(kind) or kind == "mcp"
    assert kind_of(msgspec.convert(base(content="x"), Skill)) == "skill"
    assert kind_of(msgspec.convert(base(command="npx"), McpServer)) == "mcp"


def test_expand_argv_substitutes_inside_arguments_without_splitting() -> None:
    argv = ["{python}", "-m", "x", "--dir={workspace}", "{prompt}", '{"json": true}', "{unknown}"]
    out = expand_argv(argv, python="/usr/bin/python3", workspace="/w s", prompt="fix the bug; rm -rf /")
    assert out == ["/usr/bin/python3", "-m", "x", "--dir=/w s", "fix the bug; rm -rf /", '{"json": true}', "{unknown}"]


def test_expand_argv_missing_value_is_a_config_error() -> None:
    with pytest.raises(ConfigValidation) as exc_info:
        expand_argv(["claude", "{prompt}"], workspace="/w")
    assert exc_info.value.context["placeholder"] == "prompt"


def test_expand_argv_does_not_expand_recursively() -> None:
    assert expand_argv(["{prompt}"], prompt="{workspace}", workspace="/w") == ["{workspace}"]


def test_expand_env() -> None:
    assert expand_env({"CODEX_HOME": "{workspace}/.codex", "A": "b"}, workspace="/w") == {
        "CODEX_HOME": "/w/.codex",
        "A": "b",
    }


def test_placeholders_documented() -> None:
    doc = __import__("actantd.config.schema", fromlist=["x"]).__doc__
    assert doc is not None
    for name in PLACEHOLDERS:
        assert f"{{{name}}}" in doc


@given(st.lists(st.text().filter(lambda s: not any(f"{{{p}}}" in s for p in PLACEHOLDERS))))
def test_expand_argv_is_identity_without_placeholders(argv: list[str]) -> None:
    assert expand_argv(argv) == argv
