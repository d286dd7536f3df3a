"""Distillation of a foundation model (the teacher) into ACE: settings, teacher command
lines, chunked labelling. ``teacher_runner.py`` runs in the teacher's own environment."""
