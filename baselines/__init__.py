"""Baselines for I-JEPA as plain PyTorch, on the same method contract (core/method.py: `Method`,
`InputSampler`), trained by the same loop under the same budget:

- ``mae``: MAE (He et al. 2021) — baselines/mae.py
- ``data2vec``: data2vec 2.0 (Baevski et al. 2022b) — baselines/data2vec.py
- ``data2vec_v1``: data2vec (Baevski et al. 2022a), the version I-JEPA's tables compare against

Each module registers its method(s) at its end (`register_method(MethodSpec(...))`) with everything
the harness needs: the builder, whether the encoder has [cls], the config section (baselines/config.py),
the optimizer recipe, the paper run it was tuned for, the ranges of its numbers and its augmentation.
Their masks are in baselines/masking.py; the EMA teacher and its targets are core/ema.py's, shared with
I-JEPA. They import core/ and themselves only, never the harness (bench/).
"""
