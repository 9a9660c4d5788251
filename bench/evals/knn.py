"""DINO's weighted k-NN classifier through faiss.

L2-normalise train and test features; cosine similarity; the top-k train neighbours vote
for their class with weight exp(sim / T); the class with the largest summed weight wins.
One faiss search at the largest k serves every k in the list.

    top1 = knn_top1(train_x, train_y, test_x, test_y, ks=(10, 20, 100, 200), temperature=0.07)

faiss is imported on first use (`load_faiss`), not with this module.
"""

import logging
from types import ModuleType

import numpy as np
import torch

log = logging.getLogger(__name__)

# faiss's loader tries its AVX512 builds first and logs each miss at INFO with the ModuleNotFoundError
# it caught ("Could not load library with AVX512 support due to: ModuleNotFoundError(...)"), which reads
# as a failure at the top of every job log, `bench train` output and W&B console; it then loads the
# build that fits. Its warnings and errors still show.
FAISS_LOADER = "faiss.loader"


def load_faiss() -> ModuleType:
    """faiss, its loader's INFO messages quietened, searching with as many threads as torch was given
    (a local lane's share of the cores: more would fight the other lane for them)."""
    logging.getLogger(FAISS_LOADER).setLevel(logging.WARNING)
    import faiss

    faiss.omp_set_num_threads(torch.get_num_threads())
    return faiss


def normalize(x: np.ndarray) -> np.ndarray:
    x = np.ascontiguousarray(x, dtype=np.float32)
    return x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)


def make_index(dim: int, use_gpu: bool | None = None):
    """Exact inner-product index (a faiss.Index); on the GPU when faiss sees one (and use_gpu is not False)."""
    faiss = load_faiss()
    index = faiss.IndexFlatIP(dim)
    if use_gpu is None:
        use_gpu = faiss.get_num_gpus() > 0
    if use_gpu:
        index = faiss.index_cpu_to_all_gpus(index)
    return index


def search(train: np.ndarray, query: np.ndarray, k: int, use_gpu: bool | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Cosine similarities and indices of the k nearest train rows for every query row."""
    index = make_index(train.shape[1], use_gpu)
    index.add(normalize(train))
    sims, idx = index.search(normalize(query), k)
    return sims, idx


def vote(sims: np.ndarray, neighbour_labels: np.ndarray, num_classes: int, temperature: float) -> np.ndarray:
    """Weighted votes (Q, k) → predicted class (Q,)."""
    weights = torch.from_numpy(sims).double().div(temperature).exp()
    scores = torch.zeros(sims.shape[0], num_classes, dtype=torch.float64)
    scores.scatter_add_(1, torch.from_numpy(neighbour_labels).long(), weights)
    return scores.argmax(1).numpy()


def knn_predict(
    train_x: np.ndarray,
    train_y: np.ndarray,
    test_x: np.ndarray,
    ks: tuple[int, ...],
    temperature: float,
    num_classes: int | None = None,
    use_gpu: bool | None = None,
) -> dict[int, np.ndarray]:
    num_classes = num_classes or int(train_y.max()) + 1
    kmax = min(max(ks), len(train_x))
    sims, idx = search(train_x, test_x, kmax, use_gpu)
    labels = train_y[idx]
    return {k: vote(sims[:, :k], labels[:, :k], num_classes, temperature) for k in ks}


def knn_top1(
    train_x, train_y, test_x, test_y, ks=(10, 20, 100, 200), temperature=0.07, use_gpu=None
) -> dict[int, float]:
    """Top-1 accuracy in percent for each k."""
    preds = knn_predict(train_x, train_y, test_x, tuple(ks), temperature, None, use_gpu)
    return {k: float((p == test_y).mean() * 100.0) for k, p in preds.items()}
