"""Every experiment (a paper table as data) by name; an `Experiment` registers under its own name."""
from benchmark.core.registry import Registry

EXPERIMENTS: Registry = Registry("experiment", "benchmark.experiments")


def register_experiment(experiment):
    return EXPERIMENTS.register(experiment.name)(experiment)
