"""The six config kinds as msgspec Structs.

Structs are frozen, keyword-only, camelCase on the wire and reject unknown fields, because a misspelt key
silently dropped is a setting the user believes is in force and is not. List fields decode to tuples so a
loaded registry cannot be mutated by whoever reads it; :func:`to_jsonable` turns them back into lists.

Argv placeholders
-----------------
Backend ``service``/``run``/``open`` argv and a template's ``command`` may contain placeholders that the daemon
expands at spawn time with :func:`expand_argv` (backend/template ``env`` values too, with :func:`expand_env`):

``{python}``
    the daemon's own ``sys.executable`` (so the bundled demo agent runs under the same interpreter);
``{prompt}``
    the prompt of ``agent run`` (only meaningful in a backend's ``run`` argv, which must contain it);
``{workspace}``
    the instance's workspace directory (absolute);
``{name}``
    the instance name;
``{configs}``
    the configs directory (absolute).

A placeholder may sit inside a larger argument (``--dir={workspace}``); the argument is never split, so a
prompt with spaces stays one argv element. Braces that are not one of these names are left alone, so JSON
snippets in arguments survive.
"""

from __future__ import annotations

import re
import signal
from collections.abc import Mapping, Sequence
from typing import Annotated, Any, Final, Literal

import msgspec

from actantd.errors import ConfigValidation

Kind = Literal["template", "skill", "prompt", "workflow", "mcp", "backend"]
KINDS: Final[tuple[Kind, ...]] = ("template", "skill", "prompt", "workflow", "mcp", "backend")

FOLDER_TO_KIND: Final[Mapping[str, Kind]] = {
    "templates": "template",
    "skills": "skill",
    "prompts": "prompt",
    "workflows": "workflow",
    "mcp": "mcp",
    "backends": "backend",
}
KIND_TO_FOLDER: Final[Mapping[Kind, str]] = {kind: folder for folder, kind in FOLDER_TO_KIND.items()}

LaunchMode = Literal["Service", "OneShot"]
WorkspacePolicy = Literal["Persistent", "Ephemeral"]
PermissionPreset = Literal["Permissive", "Standard", "Restricted", "ReadOnly"]
RestartPolicyName = Literal["Always", "OnFailure", "Never"]
MaterializerName = Literal["claude-code", "cursor-agent", "codex", "gemini", "custom"]
RunOutput = Literal["text", "claude-json", "codex-jsonl", "gemini-json"]
TrustScope = Literal["launch", "global"]
"""How far Actant goes so an agent CLI uses the workspace's files without a trust prompt.

``launch`` (default): only per-launch environment variables and flags (``GEMINI_CLI_TRUST_WORKSPACE=true``,
``cursor-agent --trust --approve-mcps``); nothing outside the workspace is written. ``global``: also add this
workspace's entry to the CLI's own trust file (``~/.claude.json`` ``projects``, ``~/.codex/config.toml``
``[projects]``, ``~/.gemini/trustedFolders.json``), exactly as the CLI does when a user accepts its trust
dialog; one entry, added atomically with the rest of the file byte-identical, removed on destroy. Codex has
no per-launch way, so its project ``.codex/config.toml`` (MCP servers, sandbox) is only read with ``global``.
"""

NonNegInt = Annotated[int, msgspec.Meta(ge=0)]
PosInt = Annotated[int, msgspec.Meta(ge=1)]
NonNegFloat = Annotated[float, msgspec.Meta(ge=0)]
PosFloat = Annotated[float, msgspec.Meta(gt=0)]
Port = Annotated[int, msgspec.Meta(ge=1, le=65535)]
Argv = Annotated[tuple[str, ...], msgspec.Meta(min_length=1)]


def field_error(field: str, message: str) -> ValueError:
    """A ``__post_init__`` error about one field; :mod:`actantd.config.issues` moves it onto that field's path.

    msgspec reports ``__post_init__`` errors at the Struct's path; users should see ``$.stopSignal``, not ``$``.
    """
    return ValueError(f"[{field}] {message}")


class _Struct(msgspec.Struct, rename="camel", forbid_unknown_fields=True, kw_only=True, frozen=True):
    """Common Struct options, so every nested object is as strict as a top-level file.

    msgspec inherits these options at runtime, but mypy's dataclass view of Structs does not, so subclasses
    repeat ``kw_only=True, frozen=True``.
    """


class ConfigBase(_Struct, kw_only=True, frozen=True):
    """Fields every config file carries."""

    version: str
    name: str
    description: str | None = None


# --- template -------------------------------------------------------------------------------------------


class PermissionRules(_Struct, kw_only=True, frozen=True):
    """Explicit tool rules in the Claude Code ``permissions`` shape, e.g. ``"Bash(git diff:*)"``."""

    allow: tuple[str, ...] = ()
    deny: tuple[str, ...] = ()
    ask: tuple[str, ...] = ()


class RestartPolicy(_Struct, kw_only=True, frozen=True):
    """Restart budget and backoff; the maths lives in ``supervisor/policy.py``."""

    policy: RestartPolicyName = "OnFailure"
    max_restarts: NonNegInt = 5
    window_seconds: PosFloat = 300
    initial_delay_ms: NonNegInt = 500
    max_delay_ms: NonNegInt = 30_000
    min_uptime_seconds: NonNegFloat = 1.0

    def __post_init__(self) -> None:
        if self.max_delay_ms < self.initial_delay_ms:
            raise field_error("maxDelayMs", "must be >= 'initialDelayMs'")


class HealthCheck(_Struct, kw_only=True, frozen=True):
    """Either a command (exit 0 = healthy) or a TCP port to connect to; never both."""

    command: Argv | None = None
    port: Port | None = None
    host: str = "127.0.0.1"
    interval_seconds: PosFloat = 10
    timeout_seconds: PosFloat = 5
    failure_threshold: PosInt = 3

    def __post_init__(self) -> None:
        if (self.command is None) == (self.port is None):
            raise ValueError("a health check needs exactly one of 'command' or 'port'")


def _signal_number(name: str) -> int | None:
    member = signal.Signals.__members__.get(name)
    return int(member) if member is not None else None


class Template(ConfigBase, kw_only=True, frozen=True):
    """An agent recipe: a backend plus named references, resolved at read time, never copied."""

    # Field order is the canonical key order of written files (migrations), matching the bundled examples in configs/.
    backend: str = "custom"
    launch_mode: LaunchMode = "Service"
    command: Argv | None = None
    skills: tuple[str, ...] = ()
    prompts: tuple[str, ...] = ()
    mcp_servers: tuple[str, ...] = ()
    workflow: str | None = None
    permissions: PermissionPreset | PermissionRules = "Standard"
    trust: TrustScope = "launch"
    workspace_policy: WorkspacePolicy = "Persistent"
    env: dict[str, str] = msgspec.field(default_factory=dict)
    restart: RestartPolicy = msgspec.field(default_factory=RestartPolicy)
    stop_signal: str = "SIGTERM"
    stop_timeout_seconds: NonNegFloat = 10.0
    health_check: HealthCheck | None = None
    # Workspace setup (issue #12): run once in a new workspace, e.g. ["npm", "ci"]; placeholders as in `command`.
    setup: Argv | None = None
    setup_timeout_seconds: PosFloat = 600.0

    def __post_init__(self) -> None:
        # Checked here rather than at stop time: a typo must surface when the file is saved, not when the
        # user is trying to stop a runaway agent.
        if _signal_number(self.stop_signal) is None:
            raise field_error(
                "stopSignal", f"unknown signal {self.stop_signal!r} (use a name such as 'SIGTERM' or 'SIGINT')"
            )

    @property
    def stop_signal_number(self) -> int:
        number = _signal_number(self.stop_signal)
        assert number is not None  # guaranteed by __post_init__
        return number


# --- Markdown kinds ------------------------------------------------------------------------------------


class Skill(ConfigBase, kw_only=True, frozen=True):
    content: str


class Prompt(ConfigBase, kw_only=True, frozen=True):
    content: str


class Workflow(ConfigBase, kw_only=True, frozen=True):
    content: str


# --- MCP server -----------------------------------------------------------------------------------------


class McpServer(ConfigBase, kw_only=True, frozen=True):
    """One MCP server: stdio ``{command, args, env}`` or remote ``{type: "http"|"sse", url, headers}``.

    Credentials are written as environment references, ``${GITHUB_TOKEN}`` (``"Authorization": "Bearer
    ${GITHUB_TOKEN}"``, ``"env": {"GITHUB_TOKEN": "${GITHUB_TOKEN}"}``); each materializer renders them in its
    CLI's own syntax (see :mod:`actantd.materialize.envref`), so the secret itself never lands in a file.

    One Struct with a shape check rather than a tagged union, because the stdio form has no tag in the
    formats every CLI reads (``.mcp.json``), and users copy entries from there.
    """

    type: Literal["stdio", "http", "sse"] | None = None
    command: str | None = None
    args: tuple[str, ...] = ()
    env: dict[str, str] = msgspec.field(default_factory=dict)
    url: str | None = None
    headers: dict[str, str] = msgspec.field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.is_remote:
            if not self.url:
                raise ValueError(f"an MCP server of type '{self.type}' needs a 'url'")
            if self.command is not None or self.args or self.env:
                raise ValueError(
                    f"an MCP server of type '{self.type}' takes 'url' and 'headers', not 'command', 'args' or 'env'"
                )
            if not re.match(r"^https?://", self.url):
                raise field_error("url", "must start with http:// or https://")
        else:
            if not self.command:
                raise ValueError("an MCP server needs either 'command' (stdio) or 'type': 'http' with a 'url'")
            if self.url is not None or self.headers:
                raise ValueError("'url' and 'headers' need 'type': 'http' (or 'sse')")

    @property
    def is_remote(self) -> bool:
        return self.type in ("http", "sse")


# --- backend --------------------------------------------------------------------------------------------


class Backend(ConfigBase, kw_only=True, frozen=True):
    """How to run one agent CLI: argv per use (service, one-shot, interactive) and its materializer."""

    executable: str | None = None
    install: str | None = None
    service: Argv | None = None
    run: Argv | None = None
    open: Argv | None = None
    env: dict[str, str] = msgspec.field(default_factory=dict)
    materializer: MaterializerName = "custom"
    # -- talking to the agent (agent run / agent prompt) --
    run_output: RunOutput | None = None
    """How to read the ``run`` argv's stdout; None: by materializer (claude-code, codex, gemini), else text."""
    run_resume: Argv | None = None
    """The one-shot argv that continues a conversation (``agent run --continue``): ``{prompt}``, and ``{session}``
    for the id the last run reported (without it, the CLI's own "latest session in this workspace" is used)."""
    protocol: Literal["acp"] | None = None
    """``"acp"``: the ``service`` argv speaks the Agent Client Protocol on stdin/stdout (``agent prompt``)."""
    start_check_seconds: float | None = None
    """How long ``agent start`` watches for an early exit (default: the template's minUptimeSeconds, at
    most 1 s); Node-based CLIs need longer to fail (a missing login, a bad flag)."""

    def __post_init__(self) -> None:
        if self.run is not None and not any("{prompt}" in arg for arg in self.run):
            raise field_error("run", "must contain the {prompt} placeholder")
        if self.run_resume is not None and not any("{prompt}" in arg for arg in self.run_resume):
            raise field_error("runResume", "must contain the {prompt} placeholder")
        if self.protocol == "acp" and self.service is None:
            raise field_error("protocol", "'acp' needs a 'service' argv (the command that speaks ACP on stdio)")


Config = Template | Skill | Prompt | Workflow | McpServer | Backend

KIND_TYPES: Final[Mapping[Kind, type[Config]]] = {
    "template": Template,
    "skill": Skill,
    "prompt": Prompt,
    "workflow": Workflow,
    "mcp": McpServer,
    "backend": Backend,
}


# --- helpers --------------------------------------------------------------------------------------------

PLACEHOLDERS: Final[frozenset[str]] = frozenset({"python", "prompt", "workspace", "name", "configs"})
_PLACEHOLDER_RE = re.compile(r"\{(" + "|".join(sorted(PLACEHOLDERS)) + r")\}")


def _expand(text: str, values: Mapping[str, str], where: str) -> str:
    def sub(match: re.Match[str]) -> str:
        key = match.group(1)
        if key not in values:
            raise ConfigValidation(
                f"placeholder {{{key}}} in {where} has no value here", placeholder=key, argument=text
            )
        return values[key]

    return _PLACEHOLDER_RE.sub(sub, text)


def expand_argv(argv: Sequence[str], **values: str) -> list[str]:
    """Substitute the placeholders listed in the module docstring; never splits an argument.

    Raises :class:`~actantd.errors.ConfigValidation` when the argv uses a known placeholder for which no value
    was given (for example ``{prompt}`` in a service argv), rather than passing the literal to the agent.
    """
    return [_expand(arg, values, "argv") for arg in argv]


def expand_env(env: Mapping[str, str], **values: str) -> dict[str, str]:
    """Same substitution for environment values (e.g. ``"CODEX_HOME": "{workspace}/.codex"``)."""
    return {key: _expand(value, values, f"env {key}") for key, value in env.items()}


def to_jsonable(config: msgspec.Struct) -> dict[str, Any]:
    """A plain JSON-compatible dict (camelCase keys, lists not tuples) for RPC results."""
    out = msgspec.json.decode(msgspec.json.encode(config))
    assert isinstance(out, dict)
    return out


def kind_of(config: Config) -> Kind:
    for kind, cls in KIND_TYPES.items():
        if type(config) is cls:
            return kind
    raise TypeError(f"not a config: {type(config).__name__}")
