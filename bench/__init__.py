"""Benchmarks: each module prints its figures; none of them runs in the test suite."""
