"""Thermometer (Shen et al., ICML 2024, arXiv 2403.08819): one auxiliary network, trained on many
tasks, predicts a temperature for a new task from its unlabelled prompts.

Flow: ``features_io`` (the features folder) -> ``model`` (network, calibrator folder) -> ``losses``
-> ``fit`` (training over tasks) -> ``evaluate`` (leave-one-task-out against TS baselines) ->
``apply`` (calibrate a new task).
"""
