"""The immutable, validated view of a configs folder that the daemon reads from.

A Registry is never mutated: hot reload builds a new one and the daemon swaps a single reference, so a
request that started on the old registry finishes on it, consistently. Templates in it have every reference
resolvable (broken ones are kept aside in :attr:`Registry.unresolved` with their issues, so ``resolve`` can
say *why* a template is unavailable instead of "not found").
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from types import MappingProxyType
from typing import Any, NamedTuple

from actantd.config.issues import ConfigIssue
from actantd.config.schema import (
    KINDS,
    Backend,
    Config,
    Kind,
    McpServer,
    Prompt,
    Skill,
    Template,
    Workflow,
)
from actantd.errors import ComponentReference, ConfigValidation, TemplateNotFound

KIND_LABELS: Mapping[Kind, str] = {
    "template": "template",
    "skill": "skill",
    "prompt": "prompt",
    "workflow": "workflow",
    "mcp": "MCP server",
    "backend": "backend",
}


class Ref(NamedTuple):
    """One by-name reference from a template, with the JSON path it sits at."""

    kind: Kind
    name: str
    path: str


def template_refs(template: Template) -> Iterator[Ref]:
    """Every reference in a template, in the order the template lists them."""
    yield Ref("backend", template.backend, "$.backend")
    for i, name in enumerate(template.skills):
        yield Ref("skill", name, f"$.skills[{i}]")
    for i, name in enumerate(template.prompts):
        yield Ref("prompt", name, f"$.prompts[{i}]")
    for i, name in enumerate(template.mcp_servers):
        yield Ref("mcp", name, f"$.mcpServers[{i}]")
    if template.workflow is not None:
        yield Ref("workflow", template.workflow, "$.workflow")


@dataclass(frozen=True, slots=True)
class Resolved:
    """A template with its references replaced by the configs they name, in template order."""

    template: Template
    backend: Backend
    skills: tuple[Skill, ...]
    prompts: tuple[Prompt, ...]
    mcp_servers: tuple[McpServer, ...]
    workflow: Workflow | None

    @property
    def name(self) -> str:
        return self.template.name


def _frozen(mapping: Mapping[str, Any]) -> Mapping[str, Any]:
    return MappingProxyType(dict(sorted(mapping.items())))


@dataclass(frozen=True, slots=True, eq=False)
class Registry:
    configs_dir: Path
    templates: Mapping[str, Template]
    skills: Mapping[str, Skill]
    prompts: Mapping[str, Prompt]
    workflows: Mapping[str, Workflow]
    mcp: Mapping[str, McpServer]
    backends: Mapping[str, Backend]
    sources: Mapping[tuple[Kind, str], Path]
    """Absolute path of the file each config came from."""
    unresolved: Mapping[str, tuple[ConfigIssue, ...]]
    """Templates left out because a reference is broken, with the issues."""
    invalid: Mapping[tuple[Kind, str], tuple[ConfigIssue, ...]]
    """Files (by kind and file stem) that failed to load, whether or not a last good version is in force."""

    @classmethod
    def build(
        cls,
        configs_dir: Path,
        configs: Mapping[Kind, Mapping[str, Config]],
        sources: Mapping[tuple[Kind, str], Path],
        unresolved: Mapping[str, Iterable[ConfigIssue]] | None = None,
        invalid: Mapping[tuple[Kind, str], Iterable[ConfigIssue]] | None = None,
    ) -> Registry:
        def of(kind: Kind) -> Mapping[str, Any]:
            return _frozen(configs.get(kind, {}))

        return cls(
            configs_dir=configs_dir,
            templates=of("template"),
            skills=of("skill"),
            prompts=of("prompt"),
            workflows=of("workflow"),
            mcp=of("mcp"),
            backends=of("backend"),
            sources=MappingProxyType(dict(sources)),
            unresolved=MappingProxyType({k: tuple(v) for k, v in (unresolved or {}).items()}),
            invalid=MappingProxyType({k: tuple(v) for k, v in (invalid or {}).items()}),
        )

    @classmethod
    def empty(cls, configs_dir: Path) -> Registry:
        return cls.build(configs_dir, {}, {})

    # --- lookup -----------------------------------------------------------------------------------------

    def of_kind(self, kind: Kind) -> Mapping[str, Config]:
        by_kind: Mapping[Kind, Mapping[str, Any]] = {
            "template": self.templates,
            "skill": self.skills,
            "prompt": self.prompts,
            "workflow": self.workflows,
            "mcp": self.mcp,
            "backend": self.backends,
        }
        return by_kind[kind]

    def get(self, kind: Kind, name: str) -> Config | None:
        return self.of_kind(kind).get(name)

    def source(self, kind: Kind, name: str) -> Path | None:
        return self.sources.get((kind, name))

    def relative_source(self, kind: Kind, name: str) -> str | None:
        """Where a config lives, as users see it in messages (``prompts/system-prompts/x.json``)."""
        path = self.source(kind, name)
        if path is None:
            return None
        try:
            return path.relative_to(self.configs_dir).as_posix()
        except ValueError:
            return str(path)

    def items(self) -> Iterator[tuple[Kind, str, Config]]:
        for kind in KINDS:
            for name, config in self.of_kind(kind).items():
                yield kind, name, config

    def __len__(self) -> int:
        return sum(len(self.of_kind(kind)) for kind in KINDS)

    # --- templates --------------------------------------------------------------------------------------

    def template(self, name: str) -> Template:
        """The template, or the most helpful error about why it is not available."""
        found = self.templates.get(name)
        if found is not None:
            return found
        if name in self.unresolved:
            issues = self.unresolved[name]
            raise ComponentReference(
                f"template '{name}' is unavailable: {issues[0]}",
                template=name,
                issues=[str(i) for i in issues],
            )
        if ("template", name) in self.invalid:
            issues = self.invalid[("template", name)]
            raise ConfigValidation(
                f"template '{name}' is invalid: {issues[0]}", template=name, issues=[str(i) for i in issues]
            )
        close = difflib.get_close_matches(name, list(self.templates), n=1)
        hint = f" (did you mean '{close[0]}'?)" if close else ""
        raise TemplateNotFound(
            f"template '{name}' not found{hint}",
            template=name,
            available=sorted(self.templates),
            configsDir=str(self.configs_dir),
        )

    def resolve(self, template_name: str) -> Resolved:
        """The template and every config it names, in template order (prompts, skills as listed)."""
        template = self.template(template_name)
        found: dict[Kind, list[Any]] = {kind: [] for kind in KINDS}
        for ref in template_refs(template):
            config = self.get(ref.kind, ref.name)
            if config is None:
                raise ComponentReference(
                    f"template '{template_name}' references unknown {KIND_LABELS[ref.kind]} '{ref.name}'",
                    template=template_name,
                    kind=ref.kind,
                    name=ref.name,
                    path=ref.path,
                )
            found[ref.kind].append(config)
        return Resolved(
            template=template,
            backend=found["backend"][0],
            skills=tuple(found["skill"]),
            prompts=tuple(found["prompt"]),
            mcp_servers=tuple(found["mcp"]),
            workflow=found["workflow"][0] if found["workflow"] else None,
        )

    def dependents(self, kind: Kind, name: str) -> set[str]:
        """Names of templates whose resolution involves this config (a template depends on itself)."""
        if kind == "template":
            return {name} if name in self.templates else set()
        return {
            t_name
            for t_name, template in self.templates.items()
            if any(ref.kind == kind and ref.name == name for ref in template_refs(template))
        }

    # --- comparing registries (hot reload) --------------------------------------------------------------

    def changed_since(self, old: Registry) -> set[tuple[Kind, str]]:
        """Configs added, removed or modified between ``old`` and this registry (by value, not by mtime)."""
        changed: set[tuple[Kind, str]] = set()
        for kind in KINDS:
            mine, theirs = self.of_kind(kind), old.of_kind(kind)
            for name in mine.keys() | theirs.keys():
                if mine.get(name) != theirs.get(name):
                    changed.add((kind, name))
        return changed


def affected_templates(old: Registry, new: Registry) -> set[str]:
    """Templates whose instances must be re-materialized after swapping ``old`` for ``new``.

    Looks at both sides: a template that lost a skill depended on it in ``old``; one that gained a skill
    depends on it in ``new``. Templates that became unavailable are included, so the daemon can report them.
    """
    affected: set[str] = set()
    for kind, name in new.changed_since(old):
        affected |= old.dependents(kind, name) | new.dependents(kind, name)
    return affected
