"""JAX kNN vs scikit-learn brute force on MNIST pixels: same k, same data, same run.

    python benchmarks/knn.py [--k=3] [--train=60000] [--test=10000] [--smoke]

Times classifying the test images (JAX: once compiled; its first, compiling call, the index
build from the training images and how many test images took the dense path are printed
too), checks that both predict the same labels, and ends with
``jax_s=… sklearn_s=… speedup=… agree=…``. ``--smoke``: 2,000 training and 200 test images.

scikit-learn gets the uint8 pixels as they are: it computes every distance in float64 (exact
integers), then picks the k smallest with np.argpartition.
"""

from __future__ import annotations

import argparse
import time

import numpy as np
from sklearn.neighbors import KNeighborsClassifier

from jaxdigits.data import load_tfds
from jaxdigits.models.knn import KNN


def main() -> None:
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--k", type=int, default=3)
  parser.add_argument("--train", type=int, default=60_000)
  parser.add_argument("--test", type=int, default=10_000)
  parser.add_argument("--smoke", action="store_true", help="--train=2000 --test=200")
  args = parser.parse_args()
  if args.smoke:
    args.train, args.test = 2_000, 200
  train, test = load_tfds("mnist", "train", stop=args.train), load_tfds("mnist", "test",
                                                                        stop=args.test)
  x_train = train.images.reshape(len(train), -1)
  x_test = test.images.reshape(len(test), -1)

  start = time.perf_counter()
  knn = KNN(args.k, x_train, train.labels)
  build_s = time.perf_counter() - start
  start = time.perf_counter()
  knn.predict(x_test)
  first_s = time.perf_counter() - start
  dense = knn.dense_queries
  start = time.perf_counter()
  jax_pred = knn.predict(x_test)
  jax_s = time.perf_counter() - start
  print(f"jax: index build {build_s:.2f} s, first call (compiles) {first_s:.2f} s, "
        f"compiled {jax_s:.2f} s; {knn.dense_queries - dense} of {len(x_test)} test images "
        "took the dense path")

  sk = KNeighborsClassifier(args.k, algorithm="brute").fit(x_train, train.labels)
  start = time.perf_counter()
  sk_pred = sk.predict(x_test)
  sklearn_s = time.perf_counter() - start
  agree = bool(np.array_equal(jax_pred, sk_pred))
  print(f"k={args.k}: jax accuracy {np.mean(jax_pred == test.labels):.4f}, sklearn accuracy "
        f"{np.mean(sk_pred == test.labels):.4f}, {int(np.sum(jax_pred != sk_pred))} differ")
  print(f"jax_s={jax_s:.3f} sklearn_s={sklearn_s:.3f} speedup={sklearn_s / jax_s:.2f} "
        f"agree={agree}")


if __name__ == "__main__":
  main()
