"""Benchmarks of issue 9 (training and inference speed, rate, study wall time); see BENCHMARKS.md.

Run everything with `python -m bench.run_all` (or `make bench`); each script also runs alone as
`python -m bench.<script>`. Results go to bench/results/*.json.
"""

__all__: list[str] = []
