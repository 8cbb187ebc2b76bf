"""Benchmarks: timing side by side, machine description, the dense suite."""
