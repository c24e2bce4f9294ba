"""Request-scoped access to the control plane the app was built with."""

from __future__ import annotations

from fastapi import Request

from blixard.service.control_plane import ControlPlane


def plane(request: Request) -> ControlPlane:
    cp: ControlPlane = request.app.state.control_plane
    return cp
