"""Every task by name: `register_task("sst2")(Task(...))`; a name ending in .yaml/.yml is a task file
(`tasks/task_file.py`), read and checked when first asked for."""
from benchmark.core.registry import Registry
from tasks import task_file
from tasks.base import Task


class TaskRegistry(Registry[Task]):
    def get(self, name: str) -> Task:
        return task_file.load(name) if task_file.is_task_file(name) else super().get(name)

    def __contains__(self, name: str) -> bool:
        return task_file.is_task_file(name) or super().__contains__(name)


TASKS: TaskRegistry = TaskRegistry("task", "tasks", also="or a task file (.yaml)")
register_task = TASKS.register
