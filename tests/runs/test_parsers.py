"""The one-shot output parsers (actantd/runs/parsers): real-format samples, the fakes' output, and junk."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from actantd.runs.parsers import Report, claude, codex, gemini, parser_for, text

FAKES = Path(__file__).parent.parent / "fakes"

CLAUDE = {
    "type": "result", "subtype": "success", "is_error": False, "duration_ms": 2100, "num_turns": 1,
    "result": "Done.", "session_id": "9b1c", "total_cost_usd": 0.0421,
    "usage": {"input_tokens": 4, "cache_creation_input_tokens": 1200, "cache_read_input_tokens": 13000,
              "output_tokens": 80, "server_tool_use": {"web_search_requests": 0}},
}  # fmt: skip


def test_claude_result_cost_tokens_session() -> None:
    report = claude.parse("a hook warning\n" + json.dumps(CLAUDE) + "\n")
    assert report == Report(
        result="Done.", session_id="9b1c", cost_usd=0.0421, is_error=False,
        tokens={"input": 4, "output": 80, "cacheRead": 13000, "cacheWrite": 1200, "total": 14284},
    )  # fmt: skip


def test_claude_pretty_printed_and_error_flag() -> None:
    doc = {**CLAUDE, "is_error": True, "subtype": "error_max_turns", "result": None}
    report = claude.parse(json.dumps(doc, indent=2))
    assert report.is_error is True and report.result is None and report.cost_usd == 0.0421


@pytest.mark.parametrize("junk", ["", "plain text answer\n", "[1, 2]", '{"truncated": '])
def test_parsers_never_raise_on_junk(junk: str) -> None:
    for parse in (claude.parse, codex.parse, gemini.parse):
        report = parse(junk)
        assert report.result is None and report.problem, (parse, junk)
    assert text.parse(junk).result == junk


def test_codex_sums_turns_and_takes_last_message() -> None:
    lines = [
        '{"type":"thread.started","thread_id":"0199-th"}',
        '{"type":"turn.started"}',
        '{"type":"item.completed","item":{"id":"item_0","type":"reasoning","text":"hm"}}',
        '{"type":"item.completed","item":{"id":"item_1","type":"agent_message","text":"first"}}',
        '{"type":"turn.completed","usage":{"input_tokens":100,"cached_input_tokens":60,"output_tokens":5}}',
        '{"type":"item.completed","item":{"id":"item_2","type":"agent_message","text":"second"}}',
        '{"type":"turn.completed","usage":{"input_tokens":50,"cached_input_tokens":40,"output_tokens":5,'
        '"reasoning_output_tokens":3}}',
    ]
    report = codex.parse("partial line cut by the tail\n" + "\n".join(lines))
    assert report.session_id == "0199-th" and report.result == "second" and report.is_error is False
    assert report.tokens == {"input": 150, "cacheRead": 100, "output": 10, "reasoning": 3, "total": 160}
    assert report.cost_usd is None


def test_codex_failed_turn() -> None:
    report = codex.parse('{"type":"thread.started","thread_id":"t"}\n{"type":"turn.failed","error":{"message":"x"}}')
    assert report.is_error is True and report.result == "x"


def test_gemini_stats_over_models() -> None:
    doc = {
        "session_id": "g-1",
        "response": "Paris.",
        "stats": {"models": {
            "gemini-2.5-pro": {"api": {"totalRequests": 2}, "tokens": {"prompt": 24939, "candidates": 20,
                               "total": 25113, "cached": 21263, "thoughts": 154, "tool": 0}},
            "gemini-2.5-flash": {"tokens": {"prompt": 10, "candidates": 2, "total": 12, "cached": 0}},
        }},
    }  # fmt: skip
    report = gemini.parse("Loaded cached credentials.\n" + json.dumps(doc, indent=2) + "\n")
    assert report.result == "Paris." and report.session_id == "g-1" and report.is_error is False
    assert report.tokens == {"input": 24949, "output": 22, "cacheRead": 21263, "reasoning": 154, "total": 25125}


def test_gemini_error_document() -> None:
    report = gemini.parse('{"response": null, "error": {"type": "ApiError", "message": "quota", "code": 429}}')
    assert report.is_error is True and report.result == "quota"


@pytest.mark.parametrize(
    ("fake", "argv", "fmt"),
    [
        ("fake_claude.py", ["-p", "--output-format", "json", "hello"], "claude-json"),
        ("fake_codex.py", ["exec", "--json", "hello"], "codex-jsonl"),
        ("fake_gemini.py", ["-p", "hello", "--output-format", "json"], "gemini-json"),
    ],
)
def test_fakes_speak_the_formats(tmp_path: Path, fake: str, argv: list[str], fmt: str) -> None:
    done = subprocess.run([sys.executable, str(FAKES / fake), *argv], cwd=tmp_path, capture_output=True, text=True,
                          timeout=30, check=True)  # fmt: skip
    report = parser_for(fmt)(done.stdout)  # type: ignore[arg-type]
    assert report.problem is None and report.session_id
    assert report.result is not None and "turn 1" in report.result and "hello" in report.result
    assert report.tokens.get("input", 0) > 0
    assert "working" in done.stderr


def test_run_argv_and_output_format() -> None:
    from actantd.errors import InvalidParams, NotSupported
    from actantd.runs.service import output_format, run_argv

    run, resume = ["x", "{prompt}"], ["x", "--resume", "{session}", "{prompt}"]
    assert run_argv(run, resume, backend="b", session=None) == run
    assert run_argv(run, resume, backend="b", session="abc-1", continued=True) == ["x", "--resume", "abc-1", "{prompt}"]
    latest = ["x", "--resume", "latest", "{prompt}"]
    assert run_argv(run, latest, backend="b", session=None, continued=True) == latest
    with pytest.raises(InvalidParams):
        run_argv(run, resume, backend="b", session=None, continued=True)
    with pytest.raises(InvalidParams):
        run_argv(run, resume, backend="b", session="$(rm -rf /)", continued=True)
    with pytest.raises(NotSupported):
        run_argv(run, None, backend="b", session="s", continued=True)
    with pytest.raises(NotSupported):
        run_argv(None, None, backend="b", session=None)
    assert output_format(None, "claude-code") == "claude-json" and output_format(None, "custom") == "text"
    assert output_format("codex-jsonl", "custom") == "codex-jsonl"
