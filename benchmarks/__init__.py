"""Benchmark suites: `python -m benchmarks NAME` (see benchmarks/README.md)."""
