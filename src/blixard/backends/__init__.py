"""Execution backends behind one interface, found by name in a registry."""
