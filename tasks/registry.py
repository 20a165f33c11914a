"""Every task by name: `register_task("sst2")(Task(...))`."""
from benchmark.core.registry import Registry

TASKS: Registry = Registry("task", "tasks")
register_task = TASKS.register
