"""``blixard bench``: throughput and latency figures from real processes."""

from __future__ import annotations

import contextlib
import dataclasses
from collections.abc import Callable, Iterator

import click
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TaskID, TextColumn
from rich.table import Table

from blixard import benchmark
from blixard.cli import output
from blixard.cli.options import json_option, option


@contextlib.contextmanager
def stage_progress(*, quiet: bool) -> Iterator[Callable[[str, int, int], None]]:
    """A progress bar per stage on stderr; ``progress(stage, done, total)`` drives it."""
    with Progress(
        TextColumn("{task.description:>16}"),
        BarColumn(),
        MofNCompleteColumn(),
        console=output.err,
        transient=True,
        disable=quiet,
    ) as bar:
        tasks: dict[str, TaskID] = {}

        def progress(stage: str, done: int, total: int) -> None:
            if stage not in tasks:
                tasks[stage] = bar.add_task(stage, total=total)
            bar.update(tasks[stage], completed=done)
            if done >= total:
                bar.remove_task(tasks.pop(stage))

        yield progress


@click.command()
@option(
    "--database", "-d", default=None, help="Database URL (default: a fresh SQLite file per run)."
)
@option("--jobs", "-n", type=click.IntRange(1, 10_000_000), default=5000, show_default=True)
@option(
    "--concurrency",
    "-c",
    type=click.IntRange(1, 10_000),
    default=500,
    show_default=True,
    help="The worker's slots.",
)
@option("--latency-samples", type=click.IntRange(1, 100_000), default=200, show_default=True)
@option(
    "--repeat",
    "-r",
    type=click.IntRange(1, 20),
    default=3,
    show_default=True,
    help="Runs; the medians are reported.",
)
@option(
    "--claim-backlogs",
    help="Instead: claim latency with these backlogs of pending jobs, e.g. 1000,1000000.",
)
@option(
    "--scheduling",
    is_flag=True,
    help="Instead: claim throughput with fairness and limits on, beside the plain figure "
    "(--jobs jobs claimed --concurrency at a time).",
)
@json_option
def bench(
    database: str | None,
    jobs: int,
    concurrency: int,
    latency_samples: int,
    repeat: int,
    claim_backlogs: str | None,
    scheduling: bool,
    as_json: bool,
) -> None:
    """Bulk-submit no-op jobs, run them with one worker process, print the figures."""
    if scheduling:
        _scheduling(database, jobs, concurrency, repeat, as_json)
        return
    if claim_backlogs:
        _claim_scaling(database, claim_backlogs, latency_samples, as_json)
        return
    with stage_progress(quiet=as_json) as progress:
        runs, median = benchmark.run(
            database=database,
            jobs=jobs,
            concurrency=concurrency,
            latency_samples=latency_samples,
            repeat=repeat,
            progress=progress,
        )
    if as_json:
        output.print_json(
            {
                "machine": benchmark.machine(),
                "median": median.as_dict(),
                "runs": [r.as_dict() for r in runs],
            }
        )
        return
    table = _runs_table(
        f"blixard bench: {jobs} no-op jobs, 1 worker x {concurrency} slots, {benchmark.machine()}",
        len(runs),
    )
    rows = [
        ("submit (jobs/s)", "submit_jobs_per_s", "{:,.0f}"),
        ("end to end, worker start-up included (jobs/s)", "e2e_jobs_per_s", "{:,.0f}"),
        ("end to end, once running (jobs/s)", "steady_jobs_per_s", "{:,.0f}"),
        ("enqueue-to-start p50 (ms)", "latency_p50_ms", "{:.2f}"),
        ("enqueue-to-start p99 (ms)", "latency_p99_ms", "{:.2f}"),
    ]
    for label, key, fmt in rows:
        table.add_row(
            label, *(fmt.format(getattr(r, key)) for r in runs), fmt.format(getattr(median, key))
        )
    output.console.print(table)


def _claim_scaling(database: str | None, backlogs: str, samples: int, as_json: bool) -> None:
    try:
        sizes = [int(x.replace("_", "")) for x in backlogs.split(",") if x.strip()]
    except ValueError as exc:
        raise click.BadParameter(
            "a comma-separated list of numbers", param_hint="--claim-backlogs"
        ) from exc
    with stage_progress(quiet=as_json) as progress:
        results = benchmark.claim_scaling(
            database=database, backlogs=sizes, samples=samples, progress=progress
        )
    if as_json:
        output.print_json(
            {
                "machine": benchmark.machine(),
                "claim_scaling": [dataclasses.asdict(r) for r in results],
            }
        )
        return
    table = Table(
        title=f"claim latency by backlog ({database or 'sqlite'}, {benchmark.machine()})",
        box=None,
        header_style="bold",
        title_justify="left",
    )
    for col in ("pending jobs", "claim p50 (ms)", "claim p99 (ms)"):
        table.add_column(col, justify="right")
    for r in results:
        table.add_row(f"{r.backlog:,}", f"{r.claim_p50_ms:.2f}", f"{r.claim_p99_ms:.2f}")
    output.console.print(table)
    if len(results) > 1:
        ratio = results[-1].claim_p50_ms / results[0].claim_p50_ms
        output.console.print(f"p50 ratio, largest to smallest backlog: {ratio:.2f}x")


def _scheduling(database: str | None, jobs: int, batch: int, repeat: int, as_json: bool) -> None:
    from blixard import scheduling_bench

    with stage_progress(quiet=as_json) as progress:
        runs, median = scheduling_bench.claim_throughput(
            database=database, jobs=jobs, batch=batch, repeat=repeat, progress=progress
        )
    if as_json:
        output.print_json(
            {
                "machine": benchmark.machine(),
                "median": {**dataclasses.asdict(median), "ratio": median.ratio},
                "runs": [{**dataclasses.asdict(r), "ratio": r.ratio} for r in runs],
            }
        )
        return
    table = _runs_table(
        f"claim throughput, {jobs:,} jobs in claims of {batch} "
        f"({database or 'sqlite'}, {benchmark.machine()})",
        len(runs),
    )
    lines = [
        ("plain (jobs/s)", [r.plain_jobs_per_s for r in runs], median.plain_jobs_per_s),
        (
            "fairness + limits (jobs/s)",
            [r.scheduling_jobs_per_s for r in runs],
            median.scheduling_jobs_per_s,
        ),
    ]
    for label, values, mid in lines:
        table.add_row(label, *(f"{v:,.0f}" for v in values), f"{mid:,.0f}")
    table.add_row("cost (plain / with)", *(f"{r.ratio:.2f}x" for r in runs), f"{median.ratio:.2f}x")
    output.console.print(table)


def _runs_table(title: str, runs: int) -> Table:
    """A table of figures (rows) by run, with the median last; rows are the caller's."""
    table = Table(title=title, box=None, header_style="bold", title_justify="left")
    table.add_column("figure")
    for i in range(runs):
        table.add_column(f"run {i + 1}", justify="right")
    table.add_column("median", justify="right", style="bold")
    return table
