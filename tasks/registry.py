"""Every task by name: `register_task("sst2")(Task(...))`; a name ending in .yaml/.yml is a task file
(`tasks/task_file.py`), read and checked when first asked for."""
from benchmark.core.errors import BenchmarkError
from benchmark.core.registry import Registry
from tasks import task_file
from tasks.base import Task


class TaskRegistry(Registry[Task]):
    def get(self, name: str) -> Task:
        if task_file.is_task_file(name):
            return task_file.load(name)
        if name not in self.names():
            raise BenchmarkError(f"unknown task {name!r}; choose from: {', '.join(self.names())}, or a task file "
                                 "(.yaml)")
        return super().get(name)

    def __contains__(self, name: str) -> bool:
        return task_file.is_task_file(name) or super().__contains__(name)


TASKS: TaskRegistry = TaskRegistry("task", "tasks")
register_task = TASKS.register
