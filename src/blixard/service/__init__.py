"""Use cases over a Store: the only layer that changes state."""
