"""The ``blixard`` command: errors become messages and exit codes, never tracebacks."""

from __future__ import annotations

import sys

import click

from blixard import __version__
from blixard.cli.cluster import stats, workers
from blixard.cli.jobs import jobs, submit
from blixard.cli.servers import db, server, up, worker
from blixard.errors import BlixardError, ClientError

USAGE = 2
FAILURE = 1


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="blixard")
def cli() -> None:
    """Blixard: a generic distributed job orchestrator."""


for command in (up, server, worker, submit, jobs, workers, stats, db):
    cli.add_command(command)


def _bench() -> click.Command:
    from blixard.cli.bench import bench

    return bench


cli.add_command(_bench())


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
    except BlixardError as exc:
        click.echo(f"error: {exc.message}", err=True)
        sys.exit(USAGE if 400 <= exc.status_code < 500 else FAILURE)
    except KeyboardInterrupt:
        sys.exit(130)
