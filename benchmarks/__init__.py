"""Benchmarks of colabmodels against the Drive emulator: ``python -m benchmarks.run``."""
