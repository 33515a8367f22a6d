"""LightningModules: what to optimise and measure, for any model from ``litnets.models``."""

from litnets.tasks.base import SchedulerSpec, Task
from litnets.tasks.classification import ClassificationTask
from litnets.tasks.regression import RegressionTask

TASKS: dict[str, type[Task]] = {"classification": ClassificationTask, "regression": RegressionTask}

__all__ = ["TASKS", "ClassificationTask", "RegressionTask", "SchedulerSpec", "Task"]
