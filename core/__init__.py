"""Shared model code that every method builds on and that imports nothing from the harness
(`bench/`): the ViT (`vit`), the EMA teacher (`ema`), the method contract and its registry
(`method`: `Method`, `InputSampler`, `MethodSpec`, `METHODS`), the run's clock and EMA schedule
(`clock`), value ranges (`ranges`), name registries (`registry`) and the user-mistake error
(`errors`). Methods (`ijepa/`, `baselines/`) depend on this package; the harness depends on the
methods; nothing here depends on either.
"""
