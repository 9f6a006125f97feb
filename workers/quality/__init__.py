"""Quality control: comparing annotation jobs with a task's ground truth, as CVAT does."""
