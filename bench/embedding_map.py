"""Which 2-D projection for the Embedding map page: time and quality of each candidate on synthetic
clustered 512-d embeddings (float16, non-negative like VGG19's pooled features), at 22,000 points
(20x the FI test set) and 118,000 (EmoSet's size).

  python bench/embedding_map.py                                # every method at 22,000 and 118,000
  python bench/embedding_map.py --sizes 5000 --methods pca,umap  # a quick check

Every method sees the same input: rows scaled to unit length (so that Euclidean distance ranks
neighbours as the cosine similarity does), then, except for plain PCA, PCA to 50 dimensions. Each
(method, size) runs in a child process that is stopped after --timeout seconds on each of --threads
cores (CPU time, default 300 s x 2: a map that takes longer on 2 cores is not a map a user waits for),
or after --wall-timeout on the wall clock.

Prints, per method and size: wall-clock seconds and CPU seconds (all threads; on shared cores the wall
clock stretches with other work, the CPU time much less); trustworthiness (scikit-learn, 10 neighbours, on a random
subsample of --subsample points: 1.0 = every 2-D neighbour is a neighbour in 512-d); and the k-NN class
agreement in 2-D over the same in 512-d (10 neighbours, --subsample query points against all: 1.0 =
the map keeps the classes as mixed or as separate as the embedding has them).
"""
from __future__ import annotations

import argparse
import json
import os
import resource
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
from emotion_core.neighbours import unit_rows  # noqa: E402  (the pages' own normalisation)

METHODS = ("pca", "pca50+umap", "pca50+opentsne", "pca50+sklearn-tsne")
NEIGHBOURS = 10


def get_args_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", default="22000,118000", help="comma-separated point counts (default 22000,118000)")
    parser.add_argument("--methods", default=",".join(METHODS), help=f"comma-separated, of {', '.join(METHODS)}")
    parser.add_argument("--timeout", type=float, default=300.0,
                        help="seconds on each core one method may take at one size before it is stopped (default 300)")
    parser.add_argument("--wall-timeout", type=float, default=None,
                        help="wall-clock seconds before a method is stopped (default twice --timeout; more on "
                             "cores that other work shares)")
    parser.add_argument("--subsample", type=int, default=2000,
                        help="points the quality measures are computed on (default 2000)")
    parser.add_argument("--threads", type=int, default=2, help="threads each method may use (default 2)")
    parser.add_argument("--one", nargs=2, metavar=("METHOD", "N"), help=argparse.SUPPRESS)  # the child's work
    return parser


def labelled_embeddings(labels: np.ndarray, dim: int = 512, seed: int = 1) -> np.ndarray:
    """(n, dim) float16 non-negative features clustered by label: each class a mixture of 4 Gaussian
    blobs in a 32-d latent space, mapped to dim by one random linear map, noise added, then ReLU
    (float32 arithmetic: 118,000 x 512 in float64 would be half a gigabyte per temporary)."""
    rng = np.random.default_rng(seed)
    latent_dim, blobs = 32, 4
    centres = rng.normal(0.0, 1.0, (int(labels.max()) + 1, blobs, latent_dim)).astype(np.float32)
    latent = centres[labels, rng.integers(0, blobs, len(labels))] + rng.normal(0.0, 1.6, (len(labels), latent_dim))
    mapping = rng.normal(0.0, 1.0 / np.sqrt(latent_dim), (latent_dim, dim)).astype(np.float32)
    features = latent.astype(np.float32) @ mapping
    features += rng.normal(0.0, 0.3, features.shape).astype(np.float32) + 0.5
    return np.maximum(features, 0.0).astype(np.float16)


def clustered_embeddings(n: int, dim: int = 512, classes: int = 8, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """(n, dim) float16 features (labelled_embeddings) and their (n,) random class ids. The blobs overlap
    (a 10-NN classifier in 512-d agrees with the class about 60% of the time, near the paper's 60%
    accuracy), so the map has real mixing to keep or lose."""
    labels = np.random.default_rng(seed).integers(0, classes, n)
    return labelled_embeddings(labels, dim, seed=seed + 1), labels


def project(method: str, x: np.ndarray, threads: int) -> np.ndarray:
    """(n, 2) of one candidate (x: unit rows, float32)."""
    from sklearn.decomposition import PCA

    if method == "pca":
        return PCA(n_components=2, random_state=0).fit_transform(x)
    reduced = PCA(n_components=50, random_state=0).fit_transform(x)
    if method == "pca50+umap":
        import umap

        return umap.UMAP(n_neighbors=15, min_dist=0.1, n_jobs=threads).fit_transform(reduced)
    if method == "pca50+opentsne":
        from openTSNE import TSNE

        return np.asarray(TSNE(n_jobs=threads, random_state=0).fit(reduced))
    if method == "pca50+sklearn-tsne":
        from sklearn.manifold import TSNE

        return TSNE(n_components=2, init="pca", random_state=0, n_jobs=threads).fit_transform(reduced)
    raise ValueError(f"unknown method {method!r}; choose from {', '.join(METHODS)}")


def knn_class_agreement(points: np.ndarray, labels: np.ndarray, queries: np.ndarray) -> float:
    """The share of the queries' NEIGHBOURS nearest other points (Euclidean) that have the query's class."""
    from sklearn.neighbors import NearestNeighbors

    index = NearestNeighbors(n_neighbors=NEIGHBOURS + 1, algorithm="brute" if points.shape[1] > 3 else "auto")
    _, found = index.fit(points).kneighbors(points[queries])
    return float((labels[found[:, 1:]] == labels[queries, None]).mean())  # column 0: the query itself


def cpu_seconds() -> float:
    """This process's CPU time, every thread's (user + system): unlike the wall clock, not stretched when
    other work shares the cores."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def measure_one(method: str, n: int, subsample: int, threads: int) -> dict:
    from sklearn.manifold import trustworthiness

    features, labels = clustered_embeddings(n)
    x = unit_rows(features)
    start, cpu_start = time.perf_counter(), cpu_seconds()
    xy = project(method, x, threads)
    seconds, cpu = time.perf_counter() - start, cpu_seconds() - cpu_start
    queries = np.random.default_rng(1).choice(n, size=min(subsample, n), replace=False)
    return {"seconds": seconds, "cpu_seconds": cpu,
            "trustworthiness": float(trustworthiness(x[queries], xy[queries], n_neighbors=NEIGHBOURS)),
            "agreement_2d": knn_class_agreement(np.asarray(xy, dtype=np.float32), labels, queries),
            "agreement_512d": knn_class_agreement(x, labels, queries)}


def run_child(method: str, n: int, args: argparse.Namespace) -> dict | str:
    """One measurement in its own process (stopped after args.timeout): a dict, or why there is none."""
    env_threads = {k: str(args.threads) for k in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS",
                                                    "NUMBA_NUM_THREADS")}
    command = [sys.executable, __file__, "--one", method, str(n), "--subsample", str(args.subsample),
               "--threads", str(args.threads)]
    cpu_limit = int(args.timeout * args.threads)  # args.timeout on every one of the threads

    def limit_cpu() -> None:  # in the child: the kernel stops it (SIGXCPU) past the CPU budget
        resource.setrlimit(resource.RLIMIT_CPU, (cpu_limit, cpu_limit + 5))

    wall_limit = args.wall_timeout or 2 * args.timeout
    try:
        done = subprocess.run(command, capture_output=True, text=True, timeout=wall_limit,
                              env={**os.environ, **env_threads}, preexec_fn=limit_cpu)
    except subprocess.TimeoutExpired:
        return f"stopped after {wall_limit:.0f} s wall clock"
    if done.returncode in (-signal.SIGXCPU, -signal.SIGKILL):
        return f"stopped after {cpu_limit} CPU s ({args.timeout:.0f} s on {args.threads} cores)"
    if done.returncode != 0:
        return f"failed: {(done.stderr.strip().splitlines() or ['?'])[-1][:120]}"
    return json.loads(done.stdout.strip().splitlines()[-1])


def main(args: argparse.Namespace) -> None:
    if args.one:
        print(json.dumps(measure_one(args.one[0], int(args.one[1]), args.subsample, args.threads)))
        return
    sizes = [int(s) for s in args.sizes.split(",")]
    methods = [m.strip() for m in args.methods.split(",")]
    unknown = set(methods) - set(METHODS)
    if unknown:
        raise SystemExit(f"unknown method(s) {', '.join(sorted(unknown))}; choose from {', '.join(METHODS)}")
    print(f"load average before: {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores")
    print(f"{'method':<20} {'points':>8} {'wall s':>8} {'CPU s':>8} {'trustworthiness':>16} "
          f"{'kNN class agreement 2-D / 512-d':>34}")
    for n in sizes:
        for method in methods:
            result = run_child(method, n, args)
            if isinstance(result, str):
                print(f"{method:<20} {n:>8} {result:>69}  (load average {os.getloadavg()[0]:.1f})", flush=True)
                continue
            ratio = result["agreement_2d"] / result["agreement_512d"]
            print(f"{method:<20} {n:>8} {result['seconds']:>8.1f} {result['cpu_seconds']:>8.1f} "
                  f"{result['trustworthiness']:>16.3f} "
                  f"{result['agreement_2d']:>14.3f} / {result['agreement_512d']:.3f} = {ratio:.2f}", flush=True)


if __name__ == "__main__":
    main(get_args_parser().parse_args())
