"""Metrics room: what a trained model's binary kernels look like.

``stats`` (pure NumPy on one kernel's connections), ``report`` (every SBNN layer of a
model), ``callbacks`` (the figures in the epoch logs) and ``plot`` (Hamming-weight
histograms). See docs/metrics.md and docs/architecture.md.
"""
