"""Loading a configs folder: errors by file and path, ignored files, last good kept, references, seeding."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import msgspec
import pytest

from actantd.config.migrations.runner import render
from actantd.config.schema import KIND_TO_FOLDER, Kind, Prompt, Skill, Template, Workflow
from actantd.config.store import (
    LoadResult,
    affected_templates,
    bundled_configs_dir,
    load_registry,
    seed_configs,
    validate_file,
)
from actantd.errors import ComponentReference, ConfigValidation, TemplateNotFound
from tests.helpers import cfg, write_doc

REPO = Path(__file__).resolve().parents[2]
BUNDLED = REPO / "configs"


def minimal(root: Path) -> Path:
    """A small valid folder: one template using one of everything."""
    write_doc(root, "backends/custom.json", cfg("custom"))
    write_doc(root, "skills/code-review.json", cfg("code-review", content="# Review"))
    write_doc(root, "skills/typescript-expert.json", cfg("typescript-expert", content="# TS"))
    write_doc(root, "prompts/system-prompts/code-reviewer.json", cfg("code-reviewer", content="You review."))
    write_doc(root, "workflows/trellis-standard.json", cfg("trellis-standard", content="1. Plan"))
    write_doc(root, "mcp/filesystem.json", cfg("filesystem", command="npx", args=["-y", "fs", "."]))
    write_doc(
        root,
        "templates/code-reviewer.json",
        cfg(
            "code-reviewer",
            command=["python3", "agent.py"],
            skills=["typescript-expert", "code-review"],
            prompts=["code-reviewer"],
            mcpServers=["filesystem"],
            workflow="trellis-standard",
        ),
    )
    return root


def strs(result: LoadResult) -> tuple[list[str], list[str]]:
    return [str(e) for e in result.errors], [str(w) for w in result.warnings]


# --- the bundled folder ---------------------------------------------------------------------------------


def test_bundled_configs_load_without_errors_or_warnings() -> None:
    result = load_registry(BUNDLED)
    assert strs(result) == ([], [])
    reg = result.registry
    assert set(reg.templates) == {"code-reviewer", "ci-agent", "demo"}
    assert {"typescript-expert", "code-review"} <= set(reg.skills)
    assert "trellis-standard" in reg.workflows
    assert {"code-reviewer", "ci-agent"} <= set(reg.prompts)
    assert reg.relative_source("prompt", "code-reviewer") == "prompts/system-prompts/code-reviewer.json"
    assert set(reg.backends) == {"claude-code", "cursor-agent", "codex", "gemini", "custom",
                                 "claude-code-acp", "codex-acp", "gemini-acp"}  # fmt: skip
    assert not reg.mcp["filesystem"].is_remote and any(m.is_remote for m in reg.mcp.values())
    for name in reg.templates:
        reg.resolve(name)


def test_bundled_code_reviewer_is_the_design_example() -> None:
    # DESIGN §3, verbatim: outside tools rely on this shape.
    design_example = {
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
    assert json.loads((BUNDLED / "templates/code-reviewer.json").read_text()) == design_example


def test_bundled_demo_needs_no_ai_cli() -> None:
    reg = load_registry(BUNDLED).registry
    resolved = reg.resolve("demo")
    assert resolved.backend.name == "custom"
    assert resolved.template.command == ("{python}", "-u", "-m", "actantd.demo_agent")
    assert resolved.template.launch_mode == "Service"
    assert resolved.template.restart.policy == "OnFailure"


def test_bundled_backends_are_realistic() -> None:
    backends = load_registry(BUNDLED).registry.backends
    assert backends["claude-code"].run == ("claude", "-p", "--output-format", "json", "{prompt}")
    assert backends["claude-code"].open == ("claude",)
    assert backends["codex"].run == ("codex", "exec", "--skip-git-repo-check", "--json", "{prompt}")
    assert backends["gemini"].run == ("gemini", "-p", "{prompt}", "--output-format", "json")
    assert backends["cursor-agent"].run is not None and backends["cursor-agent"].run[:2] == ("cursor-agent", "-p")
    installs = {name: b.install or "" for name, b in backends.items()}
    assert "@anthropic-ai/claude-code" in installs["claude-code"]
    assert "@openai/codex" in installs["codex"]
    assert "@google/gemini-cli" in installs["gemini"]
    for name, backend in backends.items():
        assert backend.materializer == name.removesuffix("-acp")  # "<cli>-acp": the same CLI as an ACP session
        assert (backend.protocol == "acp") is name.endswith("-acp")


def test_bundled_skills_are_substantive() -> None:
    reg = load_registry(BUNDLED).registry
    markdown: list[Skill | Workflow | Prompt] = [*reg.skills.values(), *reg.workflows.values(), *reg.prompts.values()]
    for config in markdown:
        assert config.content.startswith("# ")
        assert len(config.content) > 300, config.name


def test_bundled_files_are_canonically_formatted() -> None:
    """Bundled files look exactly like what `config migrate` writes, so migrating them is a no-op."""
    reg = load_registry(BUNDLED).registry
    for kind, name, config in reg.items():
        path = reg.source(kind, name)
        assert path is not None
        assert path.read_bytes() == render(kind, msgspec.json.decode(path.read_bytes())), path
        assert config.name == path.stem


def test_bundled_configs_dir_is_the_repo_folder() -> None:
    assert bundled_configs_dir() == BUNDLED


# --- errors name file, JSON path and reason -------------------------------------------------------------


def test_unknown_reference_error_is_exact_and_template_is_excluded(tmp_path: Path) -> None:
    minimal(tmp_path)
    doc = json.loads((tmp_path / "templates/code-reviewer.json").read_text())
    doc["skills"] = ["typescript-expert", "code-reveiw"]
    write_doc(tmp_path, "templates/code-reviewer.json", doc)
    result = load_registry(tmp_path)
    errors, _ = strs(result)
    assert errors == [
        "templates/code-reviewer.json: $.skills[1]: unknown skill 'code-reveiw' (did you mean 'code-review'?)"
    ]
    assert "code-reviewer" not in result.registry.templates
    with pytest.raises(ComponentReference) as exc_info:
        result.registry.resolve("code-reviewer")
    assert "unknown skill 'code-reveiw'" in exc_info.value.message
    assert exc_info.value.context["template"] == "code-reviewer"


@pytest.mark.parametrize(
    ("field", "value", "expected"),
    [
        ("backend", "claude", "templates/t.json: $.backend: unknown backend 'claude'"),
        ("prompts", ["nope"], "templates/t.json: $.prompts[0]: unknown prompt 'nope'"),
        ("mcpServers", ["x", "y"], "templates/t.json: $.mcpServers[0]: unknown MCP server 'x'"),
        ("workflow", "wf", "templates/t.json: $.workflow: unknown workflow 'wf'"),
    ],
)
def test_every_reference_kind_is_checked(tmp_path: Path, field: str, value: Any, expected: str) -> None:
    write_doc(tmp_path, "backends/custom.json", cfg("custom"))
    write_doc(tmp_path, "templates/t.json", cfg("t", command=["x"], **{field: value}))
    errors, _ = strs(load_registry(tmp_path))
    assert errors[0] == expected


def test_schema_errors_are_file_path_reason(tmp_path: Path) -> None:
    minimal(tmp_path)
    write_doc(tmp_path, "templates/bad-type.json", cfg("bad-type", skills=["code-review", 3]))
    write_doc(tmp_path, "templates/typo.json", cfg("typo", comand=["x"]))
    write_doc(tmp_path, "skills/nested/deeper/bad-skill.json", cfg("bad-skill"))
    errors, _ = strs(load_registry(tmp_path))
    assert errors == [
        "skills/nested/deeper/bad-skill.json: $: missing required field 'content'",
        "templates/bad-type.json: $.skills[1]: expected str, got int",
        "templates/typo.json: $.comand: unknown field 'comand' (did you mean 'command'?)",
    ]


def test_name_must_equal_stem_and_be_kebab_case(tmp_path: Path) -> None:
    write_doc(tmp_path, "skills/a-skill.json", cfg("other", content="x"))
    write_doc(tmp_path, "skills/Bad_Name.json", cfg("Bad_Name", content="x"))
    errors, _ = strs(load_registry(tmp_path))
    assert errors == [
        "skills/Bad_Name.json: $.name: 'Bad_Name' is not kebab-case (lowercase letters and digits joined by "
        "single hyphens)",
        "skills/a-skill.json: $.name: name 'other' must equal the file name 'a-skill'",
    ]


def test_invalid_json_reports_line_and_column(tmp_path: Path) -> None:
    write_doc(tmp_path, "skills/x.json", '{\n  "version": "1.0",\n  "name": "x",\n')
    write_doc(tmp_path, "skills/empty.json", "")
    write_doc(tmp_path, "skills/list.json", "[1, 2]")
    errors, _ = strs(load_registry(tmp_path))
    assert errors[0] == "skills/empty.json: $: file is empty (a partial write?)"
    assert errors[1] == "skills/list.json: $: expected a JSON object"
    assert errors[2].startswith("skills/x.json: $: invalid JSON at line 4 column 1")


def test_versions_older_and_newer_are_errors(tmp_path: Path) -> None:
    write_doc(tmp_path, "skills/old.json", {"version": "0.9", "name": "old", "body": "x"})
    write_doc(tmp_path, "skills/new.json", {"version": "2.0", "name": "new", "content": "x"})
    write_doc(tmp_path, "skills/odd.json", {"version": "one", "name": "odd", "content": "x"})
    write_doc(tmp_path, "skills/none.json", {"name": "none", "content": "x"})
    errors, _ = strs(load_registry(tmp_path))
    assert errors == [
        "skills/new.json: $.version: version 2.0 is newer than this Actant supports (1.0)",
        "skills/none.json: $: missing required field 'version'",
        "skills/odd.json: $.version: unknown version 'one' (expected dotted numbers); this Actant reads 1.0",
        "skills/old.json: $.version: version 0.9 is older than 1.0; run `actantctl config migrate` to upgrade it",
    ]


def test_custom_backend_template_needs_a_command(tmp_path: Path) -> None:
    write_doc(tmp_path, "backends/custom.json", cfg("custom"))
    write_doc(tmp_path, "templates/t.json", cfg("t"))
    errors, _ = strs(load_registry(tmp_path))
    assert errors == [
        "templates/t.json: $.command: backend 'custom' has no service argv, so the template must set `command`"
    ]


# --- folder structure -----------------------------------------------------------------------------------


def test_nested_folders_and_names(tmp_path: Path) -> None:
    minimal(tmp_path)
    reg = load_registry(tmp_path).registry
    assert "code-reviewer" in reg.prompts
    assert reg.source("prompt", "code-reviewer") == tmp_path / "prompts/system-prompts/code-reviewer.json"


def test_duplicate_name_within_a_kind_is_an_error(tmp_path: Path) -> None:
    minimal(tmp_path)
    write_doc(tmp_path, "skills/more/code-review.json", cfg("code-review", content="# Other"))
    result = load_registry(tmp_path)
    errors, _ = strs(result)
    assert errors == [
        "skills/more/code-review.json: $.name: duplicate skill 'code-review' (also defined in skills/code-review.json)"
    ]
    assert result.registry.skills["code-review"].content == "# Review"
    assert "code-reviewer" in result.registry.templates


def test_duplicate_prefers_the_file_already_in_force(tmp_path: Path) -> None:
    minimal(tmp_path)
    previous = load_registry(tmp_path).registry
    write_doc(tmp_path, "skills/a/code-review.json", cfg("code-review", content="# Sorted first"))
    result = load_registry(tmp_path, previous)
    assert result.registry.skills["code-review"].content == "# Review"
    assert str(result.errors[0]).startswith("skills/a/code-review.json: $.name: duplicate skill")


def test_same_name_in_different_kinds_is_fine(tmp_path: Path) -> None:
    minimal(tmp_path)
    assert strs(load_registry(tmp_path)) == ([], [])  # prompt and template are both 'code-reviewer'


def test_editor_swap_temp_hidden_and_non_json_files_are_ignored(tmp_path: Path) -> None:
    minimal(tmp_path)
    junk = [
        "skills/.code-review.json.swp",
        "skills/.code-review.json.swx",
        "skills/code-review.json~",
        "skills/4913",
        "skills/.#code-review.json",
        "skills/#code-review.json#",
        "skills/code-review.json.tmp",
        "skills/broken.json.tmp",
        "skills/README.md",
        ".backup/20250101T000000Z/skills/code-review.json",
        "skills/.hidden/x.json",
        ".git/config.json",
    ]
    for rel in junk:
        write_doc(tmp_path, rel, "{not json")
    assert strs(load_registry(tmp_path)) == ([], [])


def test_files_outside_kind_folders_are_warned_about(tmp_path: Path) -> None:
    minimal(tmp_path)
    write_doc(tmp_path, "template/x.json", cfg("x"))
    write_doc(tmp_path, "loose.json", cfg("loose"))
    errors, warnings = strs(load_registry(tmp_path))
    assert errors == []
    assert warnings[0].startswith("loose.json: $: not inside a config folder (templates/, skills/")
    assert warnings[1].startswith("template/x.json: $: not inside a config folder")


def test_unused_components_are_warned_about_but_backends_are_not(tmp_path: Path) -> None:
    minimal(tmp_path)
    write_doc(tmp_path, "skills/lonely.json", cfg("lonely", content="x"))
    write_doc(tmp_path, "mcp/remote.json", cfg("remote", type="http", url="https://example.com/mcp"))
    write_doc(tmp_path, "backends/codex.json", cfg("codex", executable="definitely-not-installed-xyz"))
    _, warnings = strs(load_registry(tmp_path))
    assert warnings == [
        "mcp/remote.json: $.name: MCP server 'remote' is not used by any template",
        "skills/lonely.json: $.name: skill 'lonely' is not used by any template",
    ]


def test_broken_template_does_not_cascade_unused_warnings(tmp_path: Path) -> None:
    minimal(tmp_path)
    doc = json.loads((tmp_path / "templates/code-reviewer.json").read_text())
    write_doc(tmp_path, "templates/code-reviewer.json", {**doc, "skills": [*doc["skills"], "missing"]})
    errors, warnings = strs(load_registry(tmp_path))
    assert len(errors) == 1 and warnings == []


def test_missing_folder_is_an_error(tmp_path: Path) -> None:
    result = load_registry(tmp_path / "nope")
    assert [e.message for e in result.errors] == ["configs folder does not exist"]
    assert len(result.registry) == 0


def test_registry_is_immutable(tmp_path: Path) -> None:
    reg = load_registry(minimal(tmp_path)).registry
    with pytest.raises(TypeError):
        reg.skills["x"] = reg.skills["code-review"]  # type: ignore[index]
    with pytest.raises(AttributeError):
        reg.skills = {}  # type: ignore[misc]


# --- hot reload: the last good version stays in force ---------------------------------------------------


def test_parse_failure_keeps_last_good_version(tmp_path: Path) -> None:
    minimal(tmp_path)
    first = load_registry(tmp_path)
    write_doc(tmp_path, "skills/code-review.json", '{"version": "1.0", "name": "code-rev')  # partial write
    second = load_registry(tmp_path, first.registry)
    errors, _ = strs(second)
    assert len(errors) == 1 and errors[0].startswith("skills/code-review.json: $: invalid JSON")
    assert second.registry.skills["code-review"] is first.registry.skills["code-review"]
    assert "code-reviewer" in second.registry.templates
    assert second.kept == {("skill", "code-review")}
    # and a later good write replaces it
    write_doc(tmp_path, "skills/code-review.json", cfg("code-review", content="# New"))
    third = load_registry(tmp_path, second.registry)
    assert third.ok and third.kept == frozenset()
    assert third.registry.skills["code-review"].content == "# New"


def test_schema_failure_keeps_last_good_template(tmp_path: Path) -> None:
    minimal(tmp_path)
    first = load_registry(tmp_path).registry
    doc = json.loads((tmp_path / "templates/code-reviewer.json").read_text())
    write_doc(tmp_path, "templates/code-reviewer.json", {**doc, "launchMode": "Forever"})
    second = load_registry(tmp_path, first)
    assert second.registry.templates["code-reviewer"] == first.templates["code-reviewer"]
    assert "$.launchMode: invalid value 'Forever'" in str(second.errors[0])


def test_without_previous_a_failed_component_breaks_its_templates(tmp_path: Path) -> None:
    minimal(tmp_path)
    write_doc(tmp_path, "skills/code-review.json", "{")
    result = load_registry(tmp_path)
    errors, _ = strs(result)
    assert "templates/code-reviewer.json: $.skills[1]: skill 'code-review' failed to load" in errors
    assert "code-reviewer" not in result.registry.templates


def test_deleted_file_is_gone_even_with_previous(tmp_path: Path) -> None:
    minimal(tmp_path)
    first = load_registry(tmp_path).registry
    (tmp_path / "mcp/filesystem.json").unlink()
    second = load_registry(tmp_path, first)
    assert "filesystem" not in second.registry.mcp
    assert [str(e) for e in second.errors] == [
        "templates/code-reviewer.json: $.mcpServers[0]: unknown MCP server 'filesystem'"
    ]


def test_broken_reference_excludes_template_even_with_previous(tmp_path: Path) -> None:
    minimal(tmp_path)
    first = load_registry(tmp_path).registry
    (tmp_path / "workflows/trellis-standard.json").unlink()
    second = load_registry(tmp_path, first).registry
    assert "code-reviewer" not in second.templates
    assert affected_templates(first, second) == {"code-reviewer"}


# --- resolve / dependents -------------------------------------------------------------------------------


def test_resolve_returns_components_in_template_order(tmp_path: Path) -> None:
    reg = load_registry(minimal(tmp_path)).registry
    resolved = reg.resolve("code-reviewer")
    assert [s.name for s in resolved.skills] == ["typescript-expert", "code-review"]
    assert [p.name for p in resolved.prompts] == ["code-reviewer"]
    assert [m.name for m in resolved.mcp_servers] == ["filesystem"]
    assert resolved.workflow is not None and resolved.workflow.name == "trellis-standard"
    assert resolved.backend.name == "custom"


def test_resolve_unknown_template_suggests(tmp_path: Path) -> None:
    reg = load_registry(minimal(tmp_path)).registry
    with pytest.raises(TemplateNotFound) as exc_info:
        reg.resolve("code-reveiwer")
    assert "did you mean 'code-reviewer'" in exc_info.value.message
    assert exc_info.value.context["available"] == ["code-reviewer"]


def test_resolve_invalid_template_says_why(tmp_path: Path) -> None:
    minimal(tmp_path)
    write_doc(tmp_path, "templates/broken.json", cfg("broken", launchMode="Sometimes"))
    reg = load_registry(tmp_path).registry
    with pytest.raises(ConfigValidation) as exc_info:
        reg.resolve("broken")
    assert "templates/broken.json: $.launchMode" in exc_info.value.message


def test_dependents(tmp_path: Path) -> None:
    minimal(tmp_path)
    write_doc(tmp_path, "templates/other.json", cfg("other", command=["x"], skills=["code-review"]))
    reg = load_registry(tmp_path).registry
    assert reg.dependents("skill", "code-review") == {"code-reviewer", "other"}
    assert reg.dependents("skill", "typescript-expert") == {"code-reviewer"}
    assert reg.dependents("backend", "custom") == {"code-reviewer", "other"}
    assert reg.dependents("mcp", "filesystem") == {"code-reviewer"}
    assert reg.dependents("workflow", "trellis-standard") == {"code-reviewer"}
    assert reg.dependents("template", "other") == {"other"}
    assert reg.dependents("template", "missing") == set()
    assert reg.dependents("prompt", "nobody-uses-me") == set()


def test_affected_templates_compares_by_value(tmp_path: Path) -> None:
    minimal(tmp_path)
    write_doc(tmp_path, "templates/other.json", cfg("other", command=["x"]))
    first = load_registry(tmp_path).registry
    assert affected_templates(first, load_registry(tmp_path, first).registry) == set()
    write_doc(tmp_path, "skills/code-review.json", cfg("code-review", content="# Changed"))
    second = load_registry(tmp_path, first).registry
    assert second.changed_since(first) == {("skill", "code-review")}
    assert affected_templates(first, second) == {"code-reviewer"}
    write_doc(tmp_path, "backends/custom.json", cfg("custom", description="changed"))
    third = load_registry(tmp_path, second).registry
    assert affected_templates(second, third) == {"code-reviewer", "other"}


# --- validate_file --------------------------------------------------------------------------------------


def test_validate_file_outside_the_folder_uses_parent_name(tmp_path: Path) -> None:
    reg = load_registry(minimal(tmp_path / "configs")).registry
    elsewhere = write_doc(tmp_path, "draft/templates/new-one.json", cfg("new-one", command=["x"], skills=["nope"]))
    assert [str(i) for i in validate_file(elsewhere, reg)] == [f"{elsewhere}: $.skills[0]: unknown skill 'nope'"]
    good = write_doc(tmp_path, "draft/templates/good.json", cfg("good", command=["x"], skills=["code-review"]))
    assert validate_file(good, reg) == []


def test_validate_file_infers_kind_from_fields(tmp_path: Path) -> None:
    reg = load_registry(minimal(tmp_path / "configs")).registry
    template = write_doc(tmp_path, "t.json", cfg("t", launchMode="Service", command=["x"], workflow="nope"))
    assert [i.message for i in validate_file(template, reg)] == ["unknown workflow 'nope'"]
    mcp = write_doc(tmp_path, "m.json", cfg("m", command="npx", unknownKey=1))
    assert [i.path for i in validate_file(mcp, reg)] == ["$.unknownKey"]
    what = write_doc(tmp_path, "w.json", cfg("w"))
    assert "cannot tell which kind" in validate_file(what, reg)[0].message


def test_validate_file_inside_the_folder_uses_relative_path(tmp_path: Path) -> None:
    configs = minimal(tmp_path)
    reg = load_registry(configs).registry
    path = write_doc(configs, "skills/x.json", cfg("x"))
    assert [str(i) for i in validate_file(path, reg)] == ["skills/x.json: $: missing required field 'content'"]
    assert str(validate_file(configs / "skills/absent.json", reg)[0]).startswith("skills/absent.json: $: cannot read")


# --- seeding --------------------------------------------------------------------------------------------


def test_seed_into_absent_folder(tmp_path: Path) -> None:
    dest = tmp_path / "xdg" / "actant"
    assert seed_configs(dest) is True
    result = load_registry(dest)
    assert strs(result) == ([], [])
    assert set(result.registry.templates) == {"code-reviewer", "ci-agent", "demo"}
    assert sorted(p.name for p in dest.parent.iterdir()) == ["actant"]  # no staging left behind


def test_seed_into_empty_folder(tmp_path: Path) -> None:
    dest = tmp_path / "configs"
    dest.mkdir()
    assert seed_configs(dest) is True
    assert (dest / "templates/demo.json").is_file()


def test_seed_leaves_existing_folder_alone(tmp_path: Path) -> None:
    dest = tmp_path / "configs"
    write_doc(dest, "skills/mine.json", cfg("mine", content="x"))
    assert seed_configs(dest) is False
    assert [p.relative_to(dest).as_posix() for p in dest.rglob("*.json")] == ["skills/mine.json"]


def test_seed_skips_hidden_and_swap_files(tmp_path: Path) -> None:
    source = tmp_path / "src"
    shutil.copytree(BUNDLED, source)
    write_doc(source, "skills/.code-review.json.swp", "x")
    write_doc(source, ".backup/old/skills/a.json", "x")
    dest = tmp_path / "dest"
    assert seed_configs(dest, source=source) is True
    assert not (dest / ".backup").exists()
    assert not (dest / "skills/.code-review.json.swp").exists()


def test_kind_folders_round_trip() -> None:
    kinds: list[Kind] = ["template", "skill", "prompt", "workflow", "mcp", "backend"]
    assert [KIND_TO_FOLDER[k] for k in kinds] == ["templates", "skills", "prompts", "workflows", "mcp", "backends"]
    assert isinstance(load_registry(BUNDLED).registry.templates["demo"], Template)
