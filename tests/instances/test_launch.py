"""Unit tests of the pure launch and probe construction (actantd/launch.py): no daemon, no process."""

from __future__ import annotations

from pathlib import Path

import pytest

from actantd.config.registry import Resolved
from actantd.config.schema import Backend, HealthCheck, Template
from actantd.errors import AgentLaunch, ConfigValidation, NotSupported
from actantd.instances.record import InstanceRecord, Overrides, new_record
from actantd.launch import DAEMON_ONLY_ENV, build_launch_spec, build_probe_spec
from actantd.paths import Layout


@pytest.fixture
def layout(tmp_path: Path) -> Layout:
    return Layout(home=tmp_path / "home", configs=tmp_path / "configs", socket=tmp_path / "s.sock")


def _record(*, work_dir: str | None = None, env: dict[str, str] | None = None) -> InstanceRecord:
    return new_record(
        name="a1", template_ref="tpl", launch_mode="Service", workspace_policy="Persistent",
        work_dir=work_dir, overrides=Overrides(env=env or {}),
    )  # fmt: skip


def _resolved(template: Template, backend: Backend | None = None) -> Resolved:
    backend = backend or Backend(version="1.0.0", name="custom")
    return Resolved(template=template, backend=backend, skills=(), prompts=(), mcp_servers=(), workflow=None)


def test_service_argv_comes_from_the_template_command_with_placeholders(layout: Layout) -> None:
    tpl = Template(version="1.0.0", name="tpl", command=("{python}", "-m", "agent", "--in", "{workspace}", "{name}"))
    spec = build_launch_spec(_record(), _resolved(tpl), layout, python="/py", base_env={})
    workspace = layout.instance_dir("a1")
    assert spec.argv == ("/py", "-m", "agent", "--in", str(workspace), "a1")
    assert spec.cwd == workspace


def test_service_argv_falls_back_to_the_backend_and_keeps_its_install_hint(layout: Layout) -> None:
    backend = Backend(version="1.0.0", name="b", service=("agent-cli", "serve"), install="npm i agent-cli")
    spec = build_launch_spec(_record(), _resolved(Template(version="1.0.0", name="tpl", backend="b"), backend), layout)
    assert spec.argv == ("agent-cli", "serve")
    assert spec.install_hint == "npm i agent-cli"


def test_env_layers_in_order_and_identity_wins(layout: Layout) -> None:
    backend = Backend(
        version="1.0.0", name="b", service=("x",), env={"A": "backend", "B": "backend", "W": "{workspace}"}
    )
    tpl = Template(version="1.0.0", name="tpl", backend="b", env={"B": "template", "C": "template"})
    record = _record(env={"C": "override", "ACTANT_INSTANCE_ID": "forged"})
    base = {"A": "daemon", "PATH": "/bin", "NOTIFY_SOCKET": "/run/sd", "LISTEN_FDS": "1"}
    spec = build_launch_spec(record, _resolved(tpl, backend), layout, base_env=base)
    assert spec.env["PATH"] == "/bin"
    assert (spec.env["A"], spec.env["B"], spec.env["C"]) == ("backend", "template", "override")
    assert spec.env["W"] == str(layout.instance_dir("a1"))
    assert spec.env["ACTANT_INSTANCE_ID"] == record.instance_id
    assert (spec.env["ACTANT_INSTANCE"], spec.env["ACTANT_TEMPLATE"]) == ("a1", "tpl")
    assert not DAEMON_ONLY_ENV & set(spec.env)


def test_a_work_dir_is_the_cwd_and_the_workspace(layout: Layout, tmp_path: Path) -> None:
    tpl = Template(version="1.0.0", name="tpl", command=("x", "{workspace}"))
    spec = build_launch_spec(_record(work_dir=str(tmp_path / "wd")), _resolved(tpl), layout, base_env={})
    assert spec.cwd == tmp_path / "wd"
    assert spec.argv == ("x", str(tmp_path / "wd"))
    assert spec.env["ACTANT_WORKSPACE"] == str(tmp_path / "wd")


def test_nothing_to_execute_is_a_launch_error_naming_template_and_backend(layout: Layout) -> None:
    with pytest.raises(AgentLaunch, match="template 'tpl' has no command and backend 'custom' no service argv"):
        build_launch_spec(_record(), _resolved(Template(version="1.0.0", name="tpl")), layout)


def test_run_and_open_use_the_backend_argv(layout: Layout) -> None:
    backend = Backend(version="1.0.0", name="b", service=("svc",), run=("cli", "-p", "{prompt}"), open=("cli",))
    tpl = Template(version="1.0.0", name="tpl", backend="b", command=("ignored",))
    resolved = _resolved(tpl, backend)
    run = build_launch_spec(_record(), resolved, layout, mode="run", prompt="fix it", base_env={})
    assert run.argv == ("cli", "-p", "fix it")
    assert build_launch_spec(_record(), resolved, layout, mode="open", base_env={}).argv == ("cli",)
    with pytest.raises(ConfigValidation, match="prompt"):
        build_launch_spec(_record(), resolved, layout, mode="run", base_env={})


@pytest.mark.parametrize("mode", ["run", "open"])
def test_a_backend_without_the_mode_is_not_supported(layout: Layout, mode: str) -> None:
    backend = Backend(version="1.0.0", name="b", service=("svc",))
    with pytest.raises(NotSupported, match=f"template 'tpl': backend 'b' has no '{mode}' argv") as info:
        build_launch_spec(_record(), _resolved(Template(version="1.0.0", name="tpl", backend="b"), backend), layout,
                          mode=mode)  # type: ignore[arg-type]  # fmt: skip
    assert info.value.context["template"] == "tpl"
    assert info.value.context["backend"] == "b"


def test_an_unknown_mode_is_refused(layout: Layout) -> None:
    tpl = Template(version="1.0.0", name="tpl", command=("x",))
    with pytest.raises(ValueError, match="unknown launch mode"):
        build_launch_spec(_record(), _resolved(tpl), layout, mode="daemon")  # type: ignore[arg-type]


def test_command_probe_runs_in_the_workspace_with_identity_env(layout: Layout) -> None:
    check = HealthCheck(command=("curl", "-f", "localhost"), timeout_seconds=2)
    spec = build_probe_spec(_record(), check, layout, base_env={"PATH": "/bin"})
    assert spec.argv == ("curl", "-f", "localhost")
    assert spec.cwd == layout.instance_dir("a1")
    assert spec.env == {"PATH": "/bin", "ACTANT_INSTANCE": "a1", "ACTANT_WORKSPACE": str(layout.instance_dir("a1"))}
    assert spec.timeout == 2
    assert spec.port is None


def test_port_probe_is_a_tcp_connect(layout: Layout) -> None:
    spec = build_probe_spec(_record(), HealthCheck(port=8123, host="127.0.0.2"), layout)
    assert (spec.argv, spec.host, spec.port, spec.timeout) == (None, "127.0.0.2", 8123, 5)
