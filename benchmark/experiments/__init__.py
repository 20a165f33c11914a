"""Experiment definitions, one module per paper table; importing this package registers them."""
from benchmark.experiments import ablation_c2, demo, table3, table4, table5, table6, table8, table9, table12  # noqa: F401
