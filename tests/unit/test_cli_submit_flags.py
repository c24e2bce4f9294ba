"""``blixard submit``'s flag values checked before any request: exit code 2, naming the
flag (no server needed: the command never gets as far as connecting)."""

from __future__ import annotations

import pytest
from click.testing import CliRunner

from blixard.cli.main import cli

UNREACHABLE = "http://127.0.0.1:9"


@pytest.mark.parametrize(
    ("args", "flag"),
    [
        (("--delay", "soon"), "--delay"),
        (("--delay", "-5m"), "--delay"),
        (("--delay", "5 minutes"), "--delay"),
        (("--run-at", "tomorrow"), "--run-at"),
        (("--delay", "5s", "--run-at", "2099-01-01T00:00:00Z"), "--delay or --run-at"),
        (("--constraint", "zone like a"), "--constraint"),
        (("--constraint", "zone in"), "--constraint"),
        (("--constraint", "zone ="), "--constraint"),
        (("--constraint", "bad label! exists"), "--constraint"),
        (("--prefer", "zone"), "--prefer"),
        (("--prefer", "zone=a:5000"), "--prefer"),
        (("--label", "no-value"), "--label"),
        (("--label", "bad key=v"), "--label"),
        (("--concurrency-limit", "2"), "--concurrency-limit"),
        (("--concurrency-key", "k", "--concurrency-limit", "0"), "--concurrency-limit"),
        (("--on-parent-failure", "maybe"), "--on-parent-failure"),
        (("--priority", "high"), "--priority"),
        (("--cpus", "-1"), "--cpus"),
        (("--memory-mb", "lots"), "--memory-mb"),
        (("--gpus", "1.5"), "--gpus"),
    ],
)
def test_a_bad_flag_value_exits_2_naming_the_flag(args: tuple[str, ...], flag: str) -> None:
    result = CliRunner().invoke(cli, ["submit", "--server", UNREACHABLE, *args, "--", "true"])
    assert result.exit_code == 2, result.output
    assert flag in result.output, result.output


def test_every_new_flag_has_an_environment_variable() -> None:
    result = CliRunner().invoke(cli, ["submit", "--help"])
    assert result.exit_code == 0, result.output
    for variable in (
        "BLIXARD_AFTER",
        "BLIXARD_ON_PARENT_FAILURE",
        "BLIXARD_RUN_AT",
        "BLIXARD_CONSTRAINT",
        "BLIXARD_PREFER",
        "BLIXARD_CONCURRENCY_KEY",
        "BLIXARD_CONCURRENCY_LIMIT",
        "BLIXARD_MEMORY_MB",
        "BLIXARD_GROUP",
    ):
        assert variable in result.output, variable
