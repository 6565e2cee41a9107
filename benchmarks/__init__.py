"""rtserver's benchmarks (``./scripts/bench``); see ``BENCHMARKS.md`` and ``run.py``."""
