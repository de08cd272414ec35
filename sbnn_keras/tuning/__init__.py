"""Tuning room: KerasTuner search over the SBNN hyperparameters and its Pareto front.

``tuner`` (``SbnnTuner`` and the three search strategies) and ``pareto`` (the front of
accuracy against sparsity or latency). See docs/tuning.md and docs/architecture.md.
"""
