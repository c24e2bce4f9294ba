"""``blixard workflows submit``: reading the workflow file, and refusing a bad one with exit
code 2 before any request (no server needed)."""

from __future__ import annotations

from pathlib import Path

import click
import pytest
from click.testing import CliRunner

from blixard.cli.main import cli
from blixard.cli.workflows import load_workflow

UNREACHABLE = "http://127.0.0.1:9"
STEPS = '[{"name": "a", "payload": {}}]'


def test_json_yaml_and_a_bare_list_of_steps(tmp_path: Path) -> None:
    (tmp_path / "wf.json").write_text('{"steps": [{"name": "a", "payload": {}}], "queue": "q"}')
    assert load_workflow(str(tmp_path / "wf.json")) == {
        "steps": [{"name": "a", "payload": {}}],
        "queue": "q",
    }
    (tmp_path / "list.json").write_text(STEPS)
    assert load_workflow(str(tmp_path / "list.json")) == {"steps": [{"name": "a", "payload": {}}]}
    (tmp_path / "wf.yml").write_text(
        "steps:\n"
        "  - name: a\n"
        "    run_at: 2030-01-31T08:00:00Z\n"
        "    payload: {day: 2030-01-31, n: 1}\n"
    )
    (step,) = load_workflow(str(tmp_path / "wf.yml"))["steps"]
    # YAML times and dates become ISO 8601 text, as the API takes them.
    assert step == {
        "name": "a",
        "run_at": "2030-01-31T08:00:00+00:00",
        "payload": {"day": "2030-01-31", "n": 1},
    }
    # No recognised extension: JSON, else YAML.
    (tmp_path / "wf.txt").write_text("- name: a\n  payload: {}\n")
    assert load_workflow(str(tmp_path / "wf.txt")) == {"steps": [{"name": "a", "payload": {}}]}


@pytest.mark.parametrize(
    ("name", "text", "message"),
    [
        ("bad.json", "{not json", "not valid JSON"),
        ("bad.yaml", "steps: [unclosed", "not valid YAML"),
        ("bad.txt", "steps: [unclosed", "not valid YAML"),
        ("jobs.json", '{"jobs": []}', "a list of steps"),
        ("scalar.yaml", "just text", "a list of steps"),
    ],
)
def test_bad_files(tmp_path: Path, name: str, text: str, message: str) -> None:
    (tmp_path / name).write_text(text)
    with pytest.raises(click.BadParameter, match=message):
        load_workflow(str(tmp_path / name))


def test_the_command_exits_2_on_a_bad_or_missing_file(tmp_path: Path) -> None:
    runner = CliRunner()
    missing = runner.invoke(
        cli, ["workflows", "submit", str(tmp_path / "nope.json"), "--server", UNREACHABLE]
    )
    assert missing.exit_code == 2, missing.output
    assert "cannot read" in missing.output
    bad = runner.invoke(cli, ["workflows", "submit", "-", "-s", UNREACHABLE], input='{"x": 1}')
    assert bad.exit_code == 2, bad.output
    assert "a list of steps" in bad.output
