"""Execution backends by name.

Backends come from the ``blixard.backends`` entry-point group (the built-ins are registered
there too, in ``pyproject.toml``), from ``BUILTIN_BACKENDS`` when the package runs from a
source checkout that was never installed (no entry points), and from ``register_backend``
at run time (tests, plugins loaded by hand). A runtime registration wins over an entry
point, which wins over the built-in fallback. Classes are imported on first use only.
"""

from __future__ import annotations

import functools
import importlib
import logging
from collections.abc import Mapping
from importlib.metadata import EntryPoint, entry_points
from types import MappingProxyType
from typing import Final

from blixard.backends.base import ExecutionBackend
from blixard.errors import BackendError, BackendNotFound, BlixardError

log = logging.getLogger(__name__)

ENTRY_POINT_GROUP: Final = "blixard.backends"

BUILTIN_BACKENDS: Final[Mapping[str, str]] = MappingProxyType(
    {
        "process": "blixard.backends.process:ProcessBackend",
        "python": "blixard.backends.python:PythonBackend",
        "mock": "blixard.backends.mock:MockBackend",
        "wasm": "blixard.backends.wasm:WasmBackend",
        "sandbox": "blixard.backends.sandbox:SandboxBackend",
        "container": "blixard.backends.container:ContainerBackend",
    }
)
"""The built-ins by import path: the same targets as the entry points in pyproject.toml."""

_registered: dict[str, type[ExecutionBackend]] = {}
_loaded: dict[str, type[ExecutionBackend]] = {}


@functools.cache
def _targets() -> Mapping[str, EntryPoint | str]:
    """Every known backend name -> where its class lives (entry points over built-ins)."""
    targets: dict[str, EntryPoint | str] = dict(BUILTIN_BACKENDS)
    for entry_point in entry_points(group=ENTRY_POINT_GROUP):
        targets[entry_point.name] = entry_point
    return MappingProxyType(targets)


def _import(target: EntryPoint | str) -> object:
    if isinstance(target, EntryPoint):
        return target.load()
    module_name, _, attr_path = target.partition(":")
    obj: object = importlib.import_module(module_name)
    for attr in attr_path.split("."):
        obj = getattr(obj, attr)
    return obj


def _check_class(name: str, obj: object) -> type[ExecutionBackend]:
    if not isinstance(obj, type) or not issubclass(obj, ExecutionBackend):
        raise BackendError(
            f"backend {name!r} is {obj!r}, not an ExecutionBackend subclass", backend=name
        )
    return obj


def _backend_class(name: str) -> type[ExecutionBackend]:
    """The class registered as ``name``; BackendNotFound / BackendError if none or broken."""
    cls = _registered.get(name) or _loaded.get(name)
    if cls is not None:
        return cls
    target = _targets().get(name)
    if target is None:
        available = backend_names()
        raise BackendNotFound(
            f"no execution backend named {name!r}; available backends: "
            + (", ".join(available) or "none"),
            backend=name,
            available=available,
        )
    try:
        obj = _import(target)
    except Exception as exc:
        where = target.value if isinstance(target, EntryPoint) else target
        raise BackendError(
            f"backend {name!r} ({where}) cannot be loaded: {type(exc).__name__}: {exc}",
            backend=name,
        ) from exc
    cls = _loaded[name] = _check_class(name, obj)
    return cls


def backend_names() -> list[str]:
    """Every known backend name, sorted, without importing any of them."""
    return sorted({*_targets(), *_registered})


def available_backends() -> dict[str, type[ExecutionBackend]]:
    """Every backend that can be loaded, by name. One that fails to import is left out
    (with a logged warning); ``load_backend`` of that name raises the reason."""
    backends: dict[str, type[ExecutionBackend]] = {}
    for name in backend_names():
        try:
            backends[name] = _backend_class(name)
        except BackendError as exc:
            log.warning("%s", exc.message)
    return backends


def load_backend(name: str, options: Mapping[str, str] | None = None) -> ExecutionBackend:
    """A new instance of backend ``name`` configured with ``options``.

    Raises ``BackendNotFound`` (naming the available backends) for an unknown name and
    ``BackendError`` for a backend that cannot be imported or rejects its options.
    """
    cls = _backend_class(name)
    try:
        return cls(options)
    except BlixardError:
        raise
    except Exception as exc:
        raise BackendError(
            f"backend {name!r} cannot be created: {type(exc).__name__}: {exc}", backend=name
        ) from exc


def register_backend(name: str, cls: type[ExecutionBackend]) -> None:
    """Make ``cls`` the backend called ``name`` in this process (over any entry point)."""
    if not isinstance(name, str) or not name:
        raise BackendError(f"invalid backend name {name!r}")
    _registered[name] = _check_class(name, cls)


def unregister_backend(name: str) -> None:
    """Undo ``register_backend(name, ...)``; an entry point of that name shows again."""
    _registered.pop(name, None)


def refresh() -> None:
    """Forget discovered entry points and loaded classes (after installing a plugin)."""
    _targets.cache_clear()
    _loaded.clear()
