"""The error hierarchy and its JSON-RPC codes, in one place.

Stdlib only so that ``actantctl`` can map codes back to names and exit statuses. Every error the daemon
raises on purpose is an :class:`ActantError`; the RPC layer turns it into
``{"code", "message", "data": {"errorCode", "context"}}`` without knowing the concrete class.
"""

from __future__ import annotations

from typing import Any, ClassVar

# Standard JSON-RPC 2.0 codes.
PARSE_ERROR = -32700
INVALID_REQUEST = -32600
METHOD_NOT_FOUND = -32601
INVALID_PARAMS = -32602
INTERNAL_ERROR = -32603


class ActantError(Exception):
    """Base of every deliberate error; ``code`` and ``error_code`` are the wire identity."""

    code: ClassVar[int] = INTERNAL_ERROR
    error_code: ClassVar[str] = "INTERNAL_ERROR"

    def __init__(self, message: str, **context: Any) -> None:
        super().__init__(message)
        self.message = message
        self.context: dict[str, Any] = context

    def to_rpc(self) -> dict[str, Any]:
        return {
            "code": self.code,
            "message": self.message,
            "data": {"errorCode": self.error_code, "context": self.context},
        }


class ParseError(ActantError):
    code = PARSE_ERROR
    error_code = "PARSE_ERROR"


class InvalidRequest(ActantError):
    code = INVALID_REQUEST
    error_code = "INVALID_REQUEST"


class MethodNotFound(ActantError):
    code = METHOD_NOT_FOUND
    error_code = "METHOD_NOT_FOUND"


class InvalidParams(ActantError):
    code = INVALID_PARAMS
    error_code = "INVALID_PARAMS"


class InternalError(ActantError):
    code = INTERNAL_ERROR
    error_code = "INTERNAL_ERROR"


class TemplateNotFound(ActantError):
    code = -32001
    error_code = "TEMPLATE_NOT_FOUND"


class ConfigValidation(ActantError):
    code = -32002
    error_code = "CONFIG_VALIDATION"


class AgentNotFound(ActantError):
    code = -32003
    error_code = "AGENT_NOT_FOUND"


class AgentAlreadyRunning(ActantError):
    code = -32004
    error_code = "AGENT_ALREADY_RUNNING"


class WorkspaceInit(ActantError):
    code = -32005
    error_code = "WORKSPACE_INIT"


class ComponentReference(ActantError):
    code = -32006
    error_code = "COMPONENT_REFERENCE"


class InstanceCorrupted(ActantError):
    code = -32007
    error_code = "INSTANCE_CORRUPTED"


class AgentLaunch(ActantError):
    code = -32008
    error_code = "AGENT_LAUNCH"


class AgentAlreadyAttached(ActantError):
    code = -32009
    error_code = "AGENT_ALREADY_ATTACHED"


class AgentNotAttached(ActantError):
    code = -32010
    error_code = "AGENT_NOT_ATTACHED"


class InvalidTransition(ActantError):
    code = -32011
    error_code = "INVALID_TRANSITION"


class AgentExists(ActantError):
    code = -32012
    error_code = "AGENT_EXISTS"


class PermissionDenied(ActantError):
    code = -32013
    error_code = "PERMISSION_DENIED"


class InvalidName(ActantError):
    code = -32014
    error_code = "INVALID_NAME"


class StateWrite(ActantError):
    """A state file could not be written (ENOSPC, EIO...): the previous state is intact on disk."""

    code = -32015
    error_code = "STATE_WRITE"


class NotSupported(ActantError):
    code = -32016
    error_code = "NOT_SUPPORTED"


class DaemonBusy(ActantError):
    """Another daemon holds the home's lock."""

    code = -32017
    error_code = "DAEMON_BUSY"


class MessageTooLarge(ActantError):
    code = -32018
    error_code = "MESSAGE_TOO_LARGE"


class SchemaTooNew(ActantError):
    """An instance written by a newer daemon: left untouched and reported, never quarantined."""

    code = -32019
    error_code = "SCHEMA_TOO_NEW"


class Timeout(ActantError):
    code = -32020
    error_code = "TIMEOUT"


class MigrationError(ActantError):
    code = -32021
    error_code = "MIGRATION"


class ConfigNotFound(ActantError):
    """A skill, prompt, workflow, MCP server or backend that no config file defines (templates have their own)."""

    code = -32022
    error_code = "CONFIG_NOT_FOUND"


class NotAGitRepository(ActantError):
    """``--repo`` names a directory that is not inside a git repository (issue #12, worktree workspaces)."""

    code = -32023
    error_code = "NOT_A_GIT_REPOSITORY"


class BranchCheckedOut(ActantError):
    """The branch an agent's worktree would use is already checked out in another worktree."""

    code = -32024
    error_code = "BRANCH_CHECKED_OUT"


class GitBaseNotFound(ActantError):
    """``--base`` names no commit, branch or tag of the repository."""

    code = -32025
    error_code = "GIT_BASE_NOT_FOUND"


class WorktreeDirty(ActantError):
    """Destroy refused: the agent's worktree has uncommitted or untracked changes (``--force`` discards them)."""

    code = -32026
    error_code = "WORKTREE_DIRTY"


class GitFailed(ActantError):
    """A git command failed for a reason Actant does not map to a more specific error (or git is missing)."""

    code = -32027
    error_code = "GIT_FAILED"


class AgentBusy(ActantError):
    """The agent is already doing what was asked (a run, a prompt, an ``agent open``): refused, never queued."""

    code = -32028
    error_code = "AGENT_BUSY"


class AcpError(ActantError):
    """The agent's ACP session failed: no session, a protocol error, or the agent answered with an error."""

    code = -32029
    error_code = "ACP_ERROR"


class Overloaded(ActantError):
    """The daemon shed this connection to keep its memory bounded (input or output budget; hardening #10)."""

    code = -32030
    error_code = "OVERLOADED"


class DestroyRefused(ActantError):
    """Destroy found an instance directory it cannot prove is this instance's (a swapped-in symlink, another
    directory, another instance's record) and removed nothing (hardening #10)."""

    code = -32031
    error_code = "DESTROY_REFUSED"


def _all_subclasses(cls: type[ActantError]) -> list[type[ActantError]]:
    out: list[type[ActantError]] = []
    for sub in cls.__subclasses__():
        out.append(sub)
        out.extend(_all_subclasses(sub))
    return out


BY_CODE: dict[int, type[ActantError]] = {c.code: c for c in _all_subclasses(ActantError)}
BY_NAME: dict[str, type[ActantError]] = {c.error_code: c for c in _all_subclasses(ActantError)}


def from_rpc(error: dict[str, Any]) -> ActantError:
    """Rebuild a typed error from a wire error object (used by clients and tests)."""
    data = error.get("data") or {}
    name = data.get("errorCode") if isinstance(data, dict) else None
    cls = BY_NAME.get(str(name)) if name else BY_CODE.get(int(error.get("code", INTERNAL_ERROR)))
    exc = (cls or ActantError)(str(error.get("message", "")), **((data or {}).get("context") or {}))
    return exc
