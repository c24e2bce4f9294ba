"""What every use case works with: the store, time, settings and the wake-up signals."""

from __future__ import annotations

from dataclasses import dataclass

from blixard.clock import Clock
from blixard.service.settings import ServerSettings
from blixard.service.signals import JobWatchers, Signal
from blixard.storage.base import Store


@dataclass(frozen=True, slots=True)
class ServiceContext:
    store: Store
    clock: Clock
    settings: ServerSettings
    work: Signal
    """Notified when work may have become claimable: submits, requeues, freed capacity."""
    watchers: JobWatchers
    """Per-job signals for callers waiting on a job to change."""


class UseCases:
    """Base of the services: unpacks the context into the attributes they use."""

    def __init__(self, ctx: ServiceContext) -> None:
        self._store = ctx.store
        self._clock = ctx.clock
        self._settings = ctx.settings
        self._work = ctx.work
        self._watchers = ctx.watchers
