"""Every error of a config file is reported, not only the first, and an unknown reference suggests the near
name (issue #11)."""

from __future__ import annotations

import json
from pathlib import Path

from actantd.config.parse import parse_bytes
from actantd.config.store import load_registry, seed_configs


def _parse(doc: dict[str, object]) -> list[str]:
    parsed, issues = parse_bytes(json.dumps(doc).encode(), "templates/t.json", "t", "template")
    assert parsed is None
    return [str(i) for i in issues]


def test_every_schema_error_of_a_file_is_reported() -> None:
    doc = {"version": "1.0", "name": "t", "backend": "custom", "launchMode": "Servise", "skils": ["a"],
           "restart": {"policy": "Sometimes", "maxRestarts": "5"}, "stopTimeoutSeconds": "x",
           "command": [1, "ok"]}  # fmt: skip
    assert _parse(doc) == [
        "templates/t.json: $.launchMode: invalid value 'Servise'; expected one of OneShot, Service",
        "templates/t.json: $.skils: unknown field 'skils' (did you mean 'skills'?)",
        "templates/t.json: $.restart.policy: invalid value 'Sometimes'; expected one of Always, Never, OnFailure",
        "templates/t.json: $.restart.maxRestarts: expected int, got str",
        "templates/t.json: $.stopTimeoutSeconds: expected float, got str",
        "templates/t.json: $.command[0]: expected str, got int",
    ]


def test_missing_fields_and_a_bad_name_are_reported_together() -> None:
    doc = {"version": "1.0", "name": "Not_Kebab", "launchMode": "Nope", "healthCheck": {"port": "80"}}
    issues = _parse(doc)
    assert "templates/t.json: $.healthCheck.port: expected int | null, got str" in issues
    assert not any("exactly one of" in i for i in issues), "no error made up by the repair"
    assert any("$.launchMode: invalid value 'Nope'" in i for i in issues)
    assert any("$.name: 'Not_Kebab' is not kebab-case" in i for i in issues)


def test_a_valid_file_still_parses() -> None:
    parsed, issues = parse_bytes(b'{"version": "1.0", "name": "t", "backend": "custom", "command": ["x"]}',
                                 "templates/t.json", "t", "template")  # fmt: skip
    assert issues == [] and parsed is not None


def test_unknown_reference_says_did_you_mean(tmp_path: Path) -> None:
    configs = tmp_path / "configs"
    seed_configs(configs)
    path = configs / "templates" / "demo.json"
    doc = json.loads(path.read_text())
    doc.update(skills=["code-reveiw"], backend="custm")
    path.write_text(json.dumps(doc))
    errors = [str(e) for e in load_registry(configs).errors if e.file == "templates/demo.json"]
    assert "templates/demo.json: $.skills[0]: unknown skill 'code-reveiw' (did you mean 'code-review'?)" in errors
    assert "templates/demo.json: $.backend: unknown backend 'custm' (did you mean 'custom'?)" in errors
