import numpy as np
import pytest

from bench.evals.knn import knn_predict, knn_top1


def numpy_weighted_knn(train_x, train_y, test_x, k, temperature, num_classes):
    """The plain reference: cosine similarities, top-k, exp(sim/T) votes, argmax."""
    a = train_x / np.linalg.norm(train_x, axis=1, keepdims=True)
    b = test_x / np.linalg.norm(test_x, axis=1, keepdims=True)
    sims = b @ a.T
    top = np.argsort(-sims, axis=1, kind="stable")[:, :k]
    preds = []
    for i in range(len(b)):
        scores = np.zeros(num_classes)
        for j in top[i]:
            scores[train_y[j]] += np.exp(sims[i, j] / temperature)
        preds.append(scores.argmax())
    return np.array(preds)


@pytest.mark.parametrize("k", [1, 10, 20, 100])
def test_faiss_matches_numpy_reference(k):
    rng = np.random.default_rng(0)
    centers = rng.normal(size=(5, 32))
    train_y = rng.integers(0, 5, 600)
    test_y = rng.integers(0, 5, 150)
    train_x = (centers[train_y] + 1.5 * rng.normal(size=(600, 32))).astype(np.float32)
    test_x = (centers[test_y] + 1.5 * rng.normal(size=(150, 32))).astype(np.float32)
    ours = knn_predict(train_x, train_y, test_x, (k,), 0.07, 5, use_gpu=False)[k]
    ref = numpy_weighted_knn(train_x, train_y, test_x, k, 0.07, 5)
    assert (ours == ref).mean() >= 0.99  # ties in float32 vs float64 similarity may flip a rare vote
    acc = knn_top1(train_x, train_y, test_x, test_y, ks=(k,), use_gpu=False)[k]
    assert acc == pytest.approx((ref == test_y).mean() * 100, abs=1.5)
    assert acc > 40  # well above chance (20 %) on these clusters


def test_temperature_changes_votes():
    # one close neighbour of class 0 against two far ones of class 1
    train_x = np.array([[1.0, 0.0], [0.0, 1.0], [0.1, 1.0]], dtype=np.float32)
    train_y = np.array([0, 1, 1])
    query = np.array([[1.0, 0.6]], dtype=np.float32)
    sharp = knn_predict(train_x, train_y, query, (3,), 0.01, 2, use_gpu=False)[3]
    flat = knn_predict(train_x, train_y, query, (3,), 100.0, 2, use_gpu=False)[3]
    assert sharp[0] == 0 and flat[0] == 1


@pytest.mark.gpu
def test_gpu_index_matches_cpu_index():
    import faiss

    if faiss.get_num_gpus() == 0:
        pytest.skip("faiss sees no GPU")
    rng = np.random.default_rng(1)
    train_x, test_x = rng.normal(size=(500, 16)).astype(np.float32), rng.normal(size=(50, 16)).astype(np.float32)
    train_y = rng.integers(0, 3, 500)
    cpu = knn_predict(train_x, train_y, test_x, (10,), 0.07, 3, use_gpu=False)[10]
    gpu = knn_predict(train_x, train_y, test_x, (10,), 0.07, 3, use_gpu=True)[10]
    assert (cpu == gpu).mean() >= 0.98


@pytest.mark.slow  # a fresh Python process
def test_faiss_loader_says_nothing_at_info_through_our_knn():
    """faiss's loader logs every AVX512 build it fails to load, with a ModuleNotFoundError, at INFO: in
    a job log (INFO) that reads as a failure. A fresh process, logging at INFO as jobs do, runs our k-NN:
    nothing from faiss's loader; importing bench.evals.knn alone neither imports faiss nor touches
    logging (nothing at import time)."""
    import subprocess
    import sys
    from pathlib import Path

    code = """
import logging, sys
import numpy as np
logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
import bench.evals.knn as knn
assert "faiss" not in sys.modules and logging.getLogger("faiss.loader").level == logging.NOTSET
x = np.random.default_rng(0).normal(size=(50, 8)).astype(np.float32)
y = np.arange(50) % 5
print(knn.knn_top1(x, y, x, y, ks=(1,), use_gpu=False)[1])
"""
    root = Path(__file__).resolve().parents[2]  # `python -c` imports from its working folder: this checkout
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300, cwd=root)
    assert done.returncode == 0, done.stderr
    assert float(done.stdout.strip()) == 100.0  # each point is its own nearest neighbour
    assert "faiss.loader" not in done.stderr and "ModuleNotFoundError" not in done.stderr, done.stderr
