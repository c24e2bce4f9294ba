"""The job a submit-style command line describes: its payload (a JSON PAYLOAD or a command
after --) and its requirements. Shared by ``blixard submit`` and ``blixard schedules
create``."""

from __future__ import annotations

import sys
from collections.abc import Mapping, Sequence
from typing import Any

import click
import orjson

from blixard.cli.options import parse_pairs


def job_payload(
    text: str | None,
    command: tuple[str, ...],
    *,
    shell: bool,
    env: tuple[str, ...],
    cwd: str | None,
) -> tuple[dict[str, Any], bool]:
    """The payload, and whether it is a command (a process job).

    ``text`` is a JSON object, ``@FILE`` or ``-`` (stdin); any other first word starts the
    command. ``env`` (``KEY=VALUE``, from --env) and ``cwd`` only go with a command."""
    if text is not None and text != "-" and not text.lstrip().startswith(("{", "@")):
        command, text = (text, *command), None  # not JSON: the command's first word
    payload = _payload(text, command, shell, parse_pairs(env, "--env"), cwd)
    return payload, bool(command)


def _payload(
    text: str | None, command: tuple[str, ...], shell: bool, env: dict[str, str], cwd: str | None
) -> dict[str, Any]:
    if text is not None and command:
        raise click.UsageError("give a JSON payload or a command after --, not both")
    if command:
        payload: dict[str, Any] = {"command": " ".join(command) if shell else list(command)}
        if env:
            payload["env"] = env
        if cwd:
            payload["cwd"] = cwd
        return payload
    if text is None:
        raise click.UsageError(
            "give a JSON payload, or a command after -- (blixard submit -- echo hello)"
        )
    if text == "-":
        text = sys.stdin.read()
    elif text.startswith("@"):
        try:
            with open(text[1:], encoding="utf-8") as fh:
                text = fh.read()
        except OSError as exc:
            raise click.BadParameter(
                f"cannot read {text[1:]}: {exc}", param_hint="PAYLOAD"
            ) from exc
    try:
        value = orjson.loads(text)
    except orjson.JSONDecodeError as exc:
        raise click.BadParameter(f"not valid JSON: {exc}", param_hint="PAYLOAD") from exc
    if not isinstance(value, dict):
        raise click.BadParameter("the payload must be a JSON object", param_hint="PAYLOAD")
    return value


def job_requirements(
    *,
    cpus: float | None,
    memory_mb: int | None,
    gpus: int | None,
    labels: Mapping[str, str],
    constraints: Sequence[Mapping[str, Any]] = (),
) -> dict[str, Any] | None:
    """The ``requirements`` of a submit body from the flags given; None for none."""
    requirements: dict[str, Any] = {}
    if cpus is not None:
        requirements["cpu"] = cpus
    if memory_mb is not None:
        requirements["memory_mb"] = memory_mb
    if gpus is not None:
        requirements["gpu"] = gpus
    if labels:
        requirements["labels"] = dict(labels)
    if constraints:
        requirements["constraints"] = list(constraints)
    return requirements or None
