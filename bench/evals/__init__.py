"""Evaluation of frozen encoders (shared/reference/evals.md).

- `features`: extract average-pooled features of a checkpoint's eval encoder, or raw pixels.
- `knn`: DINO's weighted k-NN through faiss (GPU index when a GPU is present).
- `run`: `evaluate_run(run_dir)` writes `eval.json` into a run folder; `pixel_reference`
  computes the raw-pixel row once per dataset.
"""
