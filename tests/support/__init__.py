"""Helpers shared by tests: real ``blixard`` processes (see ``processes``)."""
