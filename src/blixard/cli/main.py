"""The ``blixard`` command: errors become messages and exit codes, never tracebacks.

Subcommands are imported on first use, so ``blixard worker`` does not pay for the server's
or the tables' imports (a worker's start-up counts in every job that waits for it).
"""

from __future__ import annotations

import importlib
import sys

import click

from blixard import __version__
from blixard.errors import BlixardError, ClientError, ConfigurationError

USAGE = 2
FAILURE = 1

COMMANDS = {
    "up": "blixard.cli.servers:up",
    "server": "blixard.cli.servers:server",
    "worker": "blixard.cli.servers:worker",
    "submit": "blixard.cli.jobs:submit",
    "jobs": "blixard.cli.jobs:jobs",
    "workers": "blixard.cli.cluster:workers",
    "queues": "blixard.cli.queues:queues",
    "tenants": "blixard.cli.queues:tenants",
    "groups": "blixard.cli.groups:groups",
    "workflows": "blixard.cli.workflows:workflows",
    "schedules": "blixard.cli.schedules:schedules",
    "stats": "blixard.cli.cluster:stats",
    "db": "blixard.cli.servers:db",
    "bench": "blixard.cli.bench:bench",
}


class LazyGroup(click.Group):
    def list_commands(self, ctx: click.Context) -> list[str]:
        return list(COMMANDS)

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        target = COMMANDS.get(cmd_name)
        if target is None:
            return None
        module, _, attr = target.partition(":")
        command = getattr(importlib.import_module(module), attr)
        assert isinstance(command, click.Command)
        return command


@click.group(cls=LazyGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="blixard")
def cli() -> None:
    """Blixard: a generic distributed job orchestrator."""


def main() -> None:
    try:
        cli.main(standalone_mode=False)
    except click.exceptions.Abort:
        click.echo("aborted", err=True)
        sys.exit(130)
    except click.ClickException as exc:
        exc.show()
        sys.exit(exc.exit_code)
    except ClientError as exc:
        click.echo(f"error: {exc.message}", err=True)
        sys.exit(FAILURE)
    except ConfigurationError as exc:  # a flag or URL that cannot work: bad input
        click.echo(f"error: {exc.message}", err=True)
        sys.exit(USAGE)
    except BlixardError as exc:
        click.echo(f"error: {exc.message}", err=True)
        sys.exit(USAGE if 400 <= exc.status_code < 500 else FAILURE)
    except KeyboardInterrupt:
        sys.exit(130)
