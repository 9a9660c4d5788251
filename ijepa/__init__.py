"""I-JEPA (Assran et al., CVPR 2023, arXiv 2301.08243) as plain PyTorch.

- `config`: the method's dataclasses (predictor, loss, EMA, masking).
- `masks`: the multi-block mask generator, faithful to the official collator, plus the
  ablation strategies of the paper's Table 6.
- `model`: predictor, the method (core/method.py's contract: `forward(batch) -> {"loss": ...}`) and
  its registration (`register_method`: builder, config section, recipe, paper run, ranges, augmentation).
"""
