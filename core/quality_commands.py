"""Changing a task's quality settings: an event on the task's stream."""

from __future__ import annotations

from core.permissions import Action, Principal, Resource, authorize
from core.quality_settings import QualitySettings, QualitySettingsPatch
from core.tasks import Task
from core.units import Unit


def change_quality_settings(
    unit: Unit, principal: Principal, task_id: int, patch: QualitySettingsPatch
) -> QualitySettings:
    task = unit.get(Task, task_id)
    authorize(principal, Action.CHANGE, Resource("task", task.owner_id))
    changes = {
        name: value
        for name, value in patch.changes().items()
        if getattr(task.quality_settings, name) != value
    }
    if changes:
        task.trigger_event(Task.QualitySettingsChanged, changes=changes)
    return task.quality_settings
