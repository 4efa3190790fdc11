"""Benchmarks (`make bench`): each measures ours against a reference in the same run and reports ratios."""
