"""Acceptance tests: real ``blixard`` processes over real HTTP (see ``tests/support``)."""
