"""Training room: steps run around ``model.fit`` that fix a model's state for
evaluation and export.

``recalibration`` (BatchNorm moving statistics recomputed for the final weights, and
the callback that does it when EC is reached). See docs/training.md and
docs/architecture.md.
"""
