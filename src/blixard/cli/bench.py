"""``blixard bench``: throughput and latency figures from real processes."""

from __future__ import annotations

import click
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn
from rich.table import Table

from blixard import benchmark
from blixard.cli import output
from blixard.cli.options import json_option, option


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
@json_option
def bench(
    database: str | None,
    jobs: int,
    concurrency: int,
    latency_samples: int,
    repeat: int,
    as_json: bool,
) -> None:
    """Bulk-submit no-op jobs, run them with one worker process, print the figures."""
    with Progress(
        TextColumn("{task.description:>8}"),
        BarColumn(),
        MofNCompleteColumn(),
        console=output.err,
        transient=True,
        disable=as_json,
    ) as bar:
        tasks: dict[str, object] = {}

        def progress(stage: str, done: int, total: int) -> None:
            if stage not in tasks:
                tasks[stage] = bar.add_task(stage, total=total)
            bar.update(tasks[stage], completed=done)  # type: ignore[arg-type]
            if done >= total:
                bar.remove_task(tasks.pop(stage))  # type: ignore[arg-type]

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
    table = Table(
        title=f"blixard bench: {jobs} no-op jobs, 1 worker x {concurrency} slots, "
        f"{benchmark.machine()}",
        box=None,
        header_style="bold",
        title_justify="left",
    )
    table.add_column("figure")
    for i in range(len(runs)):
        table.add_column(f"run {i + 1}", justify="right")
    table.add_column("median", justify="right", style="bold")
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
