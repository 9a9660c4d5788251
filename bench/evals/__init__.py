"""Evaluation of frozen encoders (shared/reference/evals.md).

- `features`: extract a checkpoint's features once per split (last layers, avg-pooled and
  [cls]) into a cache; views of it feed every evaluation.
- `knn`: DINO's weighted k-NN through faiss (GPU index when a GPU is present).
- `linear`: many linear heads at once on cached features, best on a held-out split.
- `lowshot`: stratified and SimCLR-list label subsets, low-shot probe, few-shot k-NN.
- `run`: `evaluate_run(run_dir)` writes `eval.json`.
- `references`: the raw-pixel and random-encoder rows (`reference_rows`), computed once per
  distinct encoder, dataset and evaluation settings and cached across sweeps.
"""
