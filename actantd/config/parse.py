"""Read one config file into a Struct, or into issues: never an exception.

Everything a single file can get wrong is decided here (syntax, version, schema, name), so the folder
loader, ``template.validate`` and hot reload agree on what "valid" means. Cross-file rules (references,
duplicates) belong to the loader.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

import msgspec

from actantd.config.files import UnreadableConfig, read_config_bytes
from actantd.config.issues import ConfigIssue, all_validation_errors, from_decode_error
from actantd.config.migrations.steps import CURRENT_VERSION, is_migratable, is_newer, parse_version
from actantd.config.schema import KIND_TYPES, Config, Kind

KEBAB_RE: Final = re.compile(r"^[a-z0-9]+(?:-[a-z0-9]+)*$")

_TEMPLATE_KEYS: Final = frozenset(
    {"backend", "launchMode", "workspacePolicy", "permissions", "restart", "stopSignal", "stopTimeoutSeconds"}
    | {"healthCheck", "skills", "prompts", "mcpServers", "workflow"}
)
_BACKEND_KEYS: Final = frozenset({"executable", "install", "service", "run", "open", "materializer"})
_MCP_KEYS: Final = frozenset({"type", "url", "headers", "args"})


@dataclass(frozen=True, slots=True)
class Parsed:
    kind: Kind
    config: Config

    @property
    def name(self) -> str:
        return self.config.name


def infer_kind(doc: Mapping[str, Any]) -> Kind | None:
    """Guess a kind from a document's fields, for files validated outside a configs folder.

    Skills, prompts and workflows share one schema, so a content-only document validates as a skill.
    """
    keys = set(doc)
    if keys & _TEMPLATE_KEYS or isinstance(doc.get("command"), list):
        return "template"
    if keys & _BACKEND_KEYS:
        return "backend"
    if keys & _MCP_KEYS or isinstance(doc.get("command"), str):
        return "mcp"
    if "content" in keys:
        return "skill"
    return None


def _version_issue(file: str, version: Any) -> ConfigIssue | None:
    if version == CURRENT_VERSION:
        return None
    if not isinstance(version, str):
        return ConfigIssue(file, "$.version", f'expected a string such as "{CURRENT_VERSION}"')
    if is_migratable(version):
        return ConfigIssue(
            file,
            "$.version",
            f"version {version} is older than {CURRENT_VERSION}; run `actantctl config migrate` to upgrade it",
        )
    if is_newer(version):
        return ConfigIssue(
            file, "$.version", f"version {version} is newer than this Actant supports ({CURRENT_VERSION})"
        )
    hint = "" if parse_version(version) else " (expected dotted numbers)"
    return ConfigIssue(file, "$.version", f"unknown version '{version}'{hint}; this Actant reads {CURRENT_VERSION}")


def name_issue(file: str, name: str, stem: str) -> ConfigIssue | None:
    if not KEBAB_RE.fullmatch(name):
        return ConfigIssue(
            file, "$.name", f"'{name}' is not kebab-case (lowercase letters and digits joined by single hyphens)"
        )
    if name != stem:
        return ConfigIssue(file, "$.name", f"name '{name}' must equal the file name '{stem}'")
    return None


def parse_bytes(data: bytes, file: str, stem: str, kind: Kind | None) -> tuple[Parsed | None, list[ConfigIssue]]:
    """Decode and validate one document; ``kind=None`` infers it from the fields.

    Never raises for any input: whatever a file holds (nesting deep enough to exhaust the recursion limit,
    an integer too long to convert, a value the schema code trips on) is that file's issue, so one bad file
    can neither stop start-up nor abort a hot reload of the others.
    """
    try:
        return _parse_bytes(data, file, stem, kind)
    except RecursionError:
        return None, [ConfigIssue(file, "$", "JSON nested too deeply to read")]
    except MemoryError:
        return None, [ConfigIssue(file, "$", "file too large to read")]
    except Exception as exc:  # the contract is "issues, never an exception"
        reason = str(exc).split("\n", 1)[0][:200] or type(exc).__name__
        return None, [ConfigIssue(file, "$", f"cannot parse: {reason}")]


def _decode_issue(file: str, data: bytes, exc: msgspec.DecodeError) -> ConfigIssue:
    """The syntax error's line and column when the stdlib parser can find it, else msgspec's own message."""
    try:
        return from_decode_error(file, data, exc)
    except RecursionError:
        return ConfigIssue(file, "$", "JSON nested too deeply to read")
    except ValueError:  # e.g. an integer literal past sys.get_int_max_str_digits()
        return ConfigIssue(file, "$", f"invalid JSON: {exc}")


def _parse_bytes(data: bytes, file: str, stem: str, kind: Kind | None) -> tuple[Parsed | None, list[ConfigIssue]]:
    try:
        doc = msgspec.json.decode(data)
    except msgspec.DecodeError as exc:
        return None, [_decode_issue(file, data, exc)]
    if not isinstance(doc, dict):
        return None, [ConfigIssue(file, "$", "expected a JSON object")]
    if kind is None:
        kind = infer_kind(doc)
        if kind is None:
            return None, [ConfigIssue(file, "$", "cannot tell which kind of config this is; put it in a config folder")]
    if "version" not in doc:
        return None, [ConfigIssue(file, "$", "missing required field 'version'")]
    version_issue = _version_issue(file, doc["version"])
    if version_issue is not None:
        return None, [version_issue]
    schema = KIND_TYPES[kind]
    try:
        config = msgspec.convert(doc, schema)
    except msgspec.ValidationError as exc:
        issues = all_validation_errors(file, doc, exc, schema)  # every error, not only the first
        named = name_issue(file, doc["name"], stem) if isinstance(doc.get("name"), str) else None
        return None, issues + ([named] if named is not None else [])
    issue = name_issue(file, config.name, stem)
    if issue is not None:
        return None, [issue]
    return Parsed(kind, config), []


def parse_file(path: Path, file: str, kind: Kind | None) -> tuple[Parsed | None, list[ConfigIssue]]:
    """:func:`parse_bytes` on a file; ``file`` is how the file is named in issues. Only a regular file of
    bounded size is read (:func:`~actantd.config.files.read_config_bytes`); call it off the event loop."""
    try:
        data = read_config_bytes(path)
    except UnreadableConfig as exc:
        return None, [ConfigIssue(file, "$", str(exc))]
    return parse_bytes(data, file, path.stem, kind)
