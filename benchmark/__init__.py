"""The harness: config, registries, model loading, runner, measurement, tracking, CLI."""
