"""Runtime: the task registry and the dispatcher that runs and logs every task."""

from atlas.tasks.dispatcher import Dispatcher, TaskCancelled, TaskContext, TaskOutcome
from atlas.tasks.registry import TaskType, get_task_type, registered_task_types, task_type

__all__ = [
    "Dispatcher",
    "TaskCancelled",
    "TaskContext",
    "TaskOutcome",
    "TaskType",
    "get_task_type",
    "registered_task_types",
    "task_type",
]
