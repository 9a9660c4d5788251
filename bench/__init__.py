"""jepa-bench: pre-train I-JEPA and its baselines under equal compute budgets and compare them.

`bench/` owns configuration, launching, the training engine, evaluation and results; the
methods themselves live in `ijepa/` and `baselines/` as plain PyTorch.
"""

__version__ = "0.1.0"
