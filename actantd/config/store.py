"""Load and validate a configs folder into an immutable :class:`Registry`; seed a new folder.

Loading never raises for anything a user can write into the folder: every problem becomes a
:class:`ConfigIssue` (``file: $.path: reason``). Two rules make hot reload safe:

- a file that fails to load keeps its *last good version* in force (when a ``previous`` registry had it
  from the same file), so saving a half-edited skill never strips it from running agents;
- a template whose references do not resolve is left out (and reported), so nothing can materialize a
  workspace from a template that names a missing skill.
"""

from __future__ import annotations

import difflib
import os
import shutil
import tempfile
from collections import defaultdict
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from actantd.config.files import folder_problem, is_ignored_name, iter_config_files
from actantd.config.issues import ConfigIssue
from actantd.config.parse import Parsed, parse_file
from actantd.config.registry import (
    KIND_LABELS,
    Ref,
    Registry,
    Resolved,
    affected_templates,
    template_refs,
)
from actantd.config.schema import FOLDER_TO_KIND, KINDS, Backend, Config, Kind, Template

__all__ = [
    "ConfigIssue",
    "LoadResult",
    "Ref",
    "Registry",
    "Resolved",
    "affected_templates",
    "bundled_configs_dir",
    "load_registry",
    "seed_configs",
    "validate_file",
]

_UNUSED_WARNED: tuple[Kind, ...] = ("skill", "prompt", "workflow", "mcp")


@dataclass(frozen=True, slots=True)
class LoadResult:
    registry: Registry
    errors: list[ConfigIssue] = field(default_factory=list)
    warnings: list[ConfigIssue] = field(default_factory=list)
    kept: frozenset[tuple[Kind, str]] = frozenset()
    """Configs in force from the previous registry because their file currently fails to load."""

    @property
    def ok(self) -> bool:
        return not self.errors

    def to_dict(self) -> dict[str, Any]:
        return {
            "configsDir": str(self.registry.configs_dir),
            "counts": {kind: len(self.registry.of_kind(kind)) for kind in KINDS},
            "errors": [i.to_dict() for i in self.errors],
            "warnings": [i.to_dict() for i in self.warnings],
        }


def _display(path: Path, configs_dir: Path) -> str:
    try:
        return path.relative_to(configs_dir).as_posix()
    except ValueError:
        return str(path)


def _check_template(
    template: Template,
    file: str,
    lookup: Mapping[Kind, Mapping[str, Config]],
    invalid: Mapping[tuple[Kind, str], object],
) -> tuple[list[ConfigIssue], list[ConfigIssue]]:
    """Reference errors (and duplicate-reference warnings) for one template against the given configs."""
    errors: list[ConfigIssue] = []
    warnings: list[ConfigIssue] = []
    seen: set[tuple[Kind, str]] = set()
    for ref in template_refs(template):
        label = KIND_LABELS[ref.kind]
        if ref.name not in lookup.get(ref.kind, {}):
            if (ref.kind, ref.name) in invalid:
                errors.append(ConfigIssue(file, ref.path, f"{label} '{ref.name}' failed to load"))
            else:
                known = list(lookup.get(ref.kind, {})) + [n for k, n in invalid if k == ref.kind]
                close = difflib.get_close_matches(ref.name, known, n=1)
                hint = f" (did you mean '{close[0]}'?)" if close else ""
                errors.append(ConfigIssue(file, ref.path, f"unknown {label} '{ref.name}'{hint}"))
        elif (ref.kind, ref.name) in seen:
            warnings.append(ConfigIssue(file, ref.path, f"{label} '{ref.name}' is listed more than once"))
        seen.add((ref.kind, ref.name))
    backend = lookup.get("backend", {}).get(template.backend)
    if isinstance(backend, Backend) and template.command is None and backend.service is None:
        errors.append(
            ConfigIssue(
                file,
                "$.command",
                f"backend '{backend.name}' has no service argv, so the template must set `command`",
            )
        )
    return errors, warnings


def load_registry(configs_dir: Path, previous: Registry | None = None) -> LoadResult:
    """Read every config under ``configs_dir``; see the module docstring for the hot-reload rules."""
    configs_dir = Path(configs_dir).absolute()
    errors: list[ConfigIssue] = []
    warnings: list[ConfigIssue] = []
    problem = folder_problem(configs_dir)
    if problem is not None:
        issue = ConfigIssue(str(configs_dir), "$", problem)
        return LoadResult(Registry.empty(configs_dir), [issue], [])

    candidates: dict[Kind, dict[str, list[tuple[Path, Config]]]] = defaultdict(lambda: defaultdict(list))
    invalid: dict[tuple[Kind, str], list[ConfigIssue]] = {}
    kept: set[tuple[Kind, str]] = set()
    for path in iter_config_files(configs_dir):
        rel = path.relative_to(configs_dir)
        file = rel.as_posix()
        kind = FOLDER_TO_KIND.get(rel.parts[0]) if len(rel.parts) > 1 else None
        if kind is None:
            folders = ", ".join(f"{f}/" for f in FOLDER_TO_KIND)
            warnings.append(ConfigIssue(file, "$", f"not inside a config folder ({folders}); ignored"))
            continue
        parsed, issues = parse_file(path, file, kind)
        if parsed is not None:
            candidates[kind][parsed.name].append((path, parsed.config))
            continue
        errors.extend(issues)
        invalid[(kind, path.stem)] = issues
        if previous is not None and previous.source(kind, path.stem) == path:
            old = previous.get(kind, path.stem)
            assert old is not None
            candidates[kind][path.stem].append((path, old))
            kept.add((kind, path.stem))

    configs: dict[Kind, dict[str, Config]] = {kind: {} for kind in KINDS}
    sources: dict[tuple[Kind, str], Path] = {}
    for kind, by_name in candidates.items():
        for name, entries in by_name.items():
            keep = entries[0]
            if len(entries) > 1:
                # Prefer the file already in force, so adding a duplicate elsewhere never swaps the config.
                old_src = previous.source(kind, name) if previous is not None else None
                keep = next((e for e in entries if e[0] == old_src), entries[0])
                for path, _ in entries:
                    if path != keep[0]:
                        errors.append(
                            ConfigIssue(
                                _display(path, configs_dir),
                                "$.name",
                                f"duplicate {KIND_LABELS[kind]} '{name}' (also defined in "
                                f"{_display(keep[0], configs_dir)})",
                            )
                        )
            sources[(kind, name)] = keep[0]
            configs[kind][name] = keep[1]

    unresolved: dict[str, list[ConfigIssue]] = {}
    for name, template in list(configs["template"].items()):
        assert isinstance(template, Template)
        file = _display(sources[("template", name)], configs_dir)
        ref_errors, ref_warnings = _check_template(template, file, configs, invalid)
        warnings.extend(ref_warnings)
        if ref_errors:
            errors.extend(ref_errors)
            unresolved[name] = ref_errors
            del configs["template"][name]

    # "Unused" counts references from every template that parsed, broken or not: one bad template should
    # produce its own error, not a cascade of warnings about the skills it names.
    used: set[tuple[Kind, str]] = set()
    for kind_name in candidates.get("template", {}).values():
        for _, template in kind_name:
            assert isinstance(template, Template)
            used.update((ref.kind, ref.name) for ref in template_refs(template))
    for kind in _UNUSED_WARNED:
        for name in configs[kind]:
            if (kind, name) not in used:
                warnings.append(
                    ConfigIssue(
                        _display(sources[(kind, name)], configs_dir),
                        "$.name",
                        f"{KIND_LABELS[kind]} '{name}' is not used by any template",
                    )
                )

    registry = Registry.build(configs_dir, configs, sources, unresolved, invalid)
    warnings.extend(_backend_warnings(registry))
    # Grouped by file (stable within a file), so a report reads file by file whatever found the problem.
    errors.sort(key=lambda issue: issue.file)
    warnings.sort(key=lambda issue: issue.file)
    return LoadResult(registry, errors, warnings, frozenset(kept))


def _backend_warnings(registry: Registry) -> list[ConfigIssue]:
    """What each template asks for that its backend's CLI cannot express (a permission rule Codex has no
    form for, an env reference Codex cannot forward...): a warning naming template and backend, never a
    silent drop. Imported here, not at the top: materializers depend on the registry, not the other way."""
    from actantd import materialize

    out: list[ConfigIssue] = []
    for name in registry.templates:
        resolved = registry.resolve(name)
        backend = resolved.backend
        file = registry.relative_source("template", name) or name
        for message in materialize.warnings(resolved):
            path = "$.permissions" if message.startswith("permissions:") else "$.backend"
            text = message.removeprefix("permissions: ")
            out.append(ConfigIssue(file, path, f"template '{name}', backend '{backend.name}' "
                                   f"({backend.materializer}): {text}"))  # fmt: skip
    return out


def _kind_from_location(path: Path, configs_dir: Path) -> Kind | None:
    try:
        rel = path.relative_to(configs_dir)
    except ValueError:
        # Outside the configs folder: the nearest ancestor named like a config folder decides.
        for parent in path.parents:
            if parent.name in FOLDER_TO_KIND:
                return FOLDER_TO_KIND[parent.name]
        return None
    return FOLDER_TO_KIND.get(rel.parts[0]) if len(rel.parts) > 1 else None


def validate_file(path: Path, registry: Registry) -> list[ConfigIssue]:
    """Errors for one file anywhere on disk, references checked against ``registry`` (``template.validate``).

    The kind comes from the folder the file sits in (``.../templates/x.json``), else from its fields.
    Duplicates are not checked: validating an edited copy of an existing config is the normal use.
    """
    path = Path(path).absolute()
    file = _display(path, registry.configs_dir)
    parsed: Parsed | None
    parsed, issues = parse_file(path, file, _kind_from_location(path, registry.configs_dir))
    if parsed is None:
        return issues
    if isinstance(parsed.config, Template):
        lookup: dict[Kind, Mapping[str, Config]] = {kind: registry.of_kind(kind) for kind in KINDS}
        ref_errors, _ = _check_template(parsed.config, file, lookup, registry.invalid)
        return ref_errors
    return []


# --- bundled configs ------------------------------------------------------------------------------------


def bundled_configs_dir() -> Path:
    """The configs shipped with Actant: the checkout's ``configs/``, else the packaged copy.

    A folder only counts if it has ``templates/``, so an unrelated ``configs`` folder next to an installed
    package (site-packages) is never mistaken for ours.
    """
    here = Path(__file__).resolve()
    candidates = (here.parents[2] / "configs", here.parents[1] / "bundled_configs")
    for candidate in candidates:
        if (candidate / "templates").is_dir():
            return candidate
    return candidates[0]


def _copy_ignore(_dir: str, names: list[str]) -> set[str]:
    return {n for n in names if is_ignored_name(n) or n == "__pycache__"}


def seed_configs(dest: Path, source: Path | None = None) -> bool:
    """Copy the bundled configs to ``dest`` if it is absent or empty; True when it did.

    Copies into a hidden temp sibling and renames it into place, so ``dest`` is never half-seeded (an
    interrupted seed would otherwise look like a user's folder and never be completed). If another process
    seeds concurrently, exactly one rename wins and the other returns False.
    """
    dest = Path(dest).absolute()
    src = source if source is not None else bundled_configs_dir()
    if os.path.lexists(dest) and not dest.is_dir():
        return False  # a file, a dangling symlink or a symlink loop: the user's, never replaced by a seed
    if dest.is_dir() and any(dest.iterdir()):
        return False
    dest.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{dest.name}.seed-", dir=dest.parent))
    try:
        tree = staging / "configs"
        shutil.copytree(src, tree, ignore=_copy_ignore)
        try:
            os.replace(tree, dest)  # replaces an empty directory atomically; fails if it gained files
        except OSError:
            if dest.is_dir() and any(dest.iterdir()):
                return False
            raise
        return True
    finally:
        shutil.rmtree(staging, ignore_errors=True)
