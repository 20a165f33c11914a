"""The floor every layer stands on: errors, typed settings, the Registry class, metric and tag names,
the cache folder and the MLflow store reader. It imports nothing of ours from above
(`tests/test_layers.py` checks), so methods, tasks and reports can use it without the harness."""
