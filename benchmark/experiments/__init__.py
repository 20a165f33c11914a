"""Experiment definitions, one module per paper table; `benchmark.experiments.registry.EXPERIMENTS`
finds every registered one."""
