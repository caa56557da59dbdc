"""Benchmarks (not tests): ``python -m bench`` prints them all as one table."""
