"""The ``blixard`` command line."""
