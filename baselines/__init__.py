"""Baselines for I-JEPA as plain PyTorch, on the same method contract (bench/train/methods.py) and
trained by the same loop under the same budget:

- ``mae``: MAE (He et al. 2021) — baselines/mae.py
- ``data2vec``: data2vec 2.0 (Baevski et al. 2022b) — baselines/data2vec.py
- ``data2vec_v1``: data2vec (Baevski et al. 2022a), the version I-JEPA's tables compare against

Their masks are in baselines/masking.py, their configs and optimizer recipes in
baselines/config.py; the EMA teacher and its targets are core/ema.py's, shared with I-JEPA.
"""
