"""The worker agent: claims jobs that fit, runs them through a backend, reports back."""
