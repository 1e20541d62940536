"""Baseline: the keras.io "Simple MNIST convnet" example (Keras 3 on its JAX backend), on CPU.

Upstream: keras-team/keras-io ``examples/vision/mnist_convnet.py`` (fchollet, last modified
2020/04/21, written for Keras 3). Settings reproduced:

* model: ``Input(28, 28, 1)`` → ``Conv2D(32, 3x3, relu)`` → ``MaxPooling2D(2)`` →
  ``Conv2D(64, 3x3, relu)`` → ``MaxPooling2D(2)`` → ``Flatten`` → ``Dropout(0.5)`` →
  ``Dense(10, softmax)``, Keras default initialisers;
* ``compile(loss="categorical_crossentropy", optimizer="adam", metrics=["accuracy"])``
  (Adam at Keras' default learning rate 1e-3), one-hot labels;
* ``fit(batch_size=128, epochs=15, validation_split=0.1)``: Keras holds out the last 10% of
  the train arrays and shuffles the other 90% every epoch;
* images scaled with ``astype("float32") / 255``.

The backend is JAX (``KERAS_BACKEND=jax``, set before Keras is imported): the recipe a JAX
user is most likely to pick instead of jaxdigits.

Timed (``train_seconds``, cumulative): scaling and one-hot encoding the train arrays, model
construction and compilation, and ``fit`` with its JIT compilation and every training step.
Not timed: ``fit``'s own validation pass at the end of each epoch (measured by a callback
between ``on_test_begin`` and ``on_test_end`` and subtracted, as jaxdigits' validation is
off its clock) and the test evaluation after each epoch.

Deviations from upstream: data arrive as uint8 NHWC numpy arrays (jaxdigits' tfds-loaded
splits) instead of ``keras.datasets.mnist.load_data()``; no ``model.summary()``; progress
output off (``verbose=0``); the seed is set with ``keras.utils.set_random_seed``; optional
early stop at ``target`` test accuracy.
"""

from __future__ import annotations

import os
import time

os.environ["KERAS_BACKEND"] = "jax"  # before keras is imported; the benchmark is about JAX

import keras  # pylint: disable=g-import-not-at-top,wrong-import-position
import numpy as np  # pylint: disable=g-import-not-at-top,wrong-import-position
from keras import layers  # pylint: disable=g-import-not-at-top,wrong-import-position

NUM_CLASSES = 10
BATCH_SIZE = 128
EPOCHS = 15  # upstream; the benchmark passes its own
VALIDATION_SPLIT = 0.1


def _model() -> keras.Model:
  return keras.Sequential([
      keras.Input(shape=(28, 28, 1)),
      layers.Conv2D(32, kernel_size=(3, 3), activation="relu"),
      layers.MaxPooling2D(pool_size=(2, 2)),
      layers.Conv2D(64, kernel_size=(3, 3), activation="relu"),
      layers.MaxPooling2D(pool_size=(2, 2)),
      layers.Flatten(),
      layers.Dropout(0.5),
      layers.Dense(NUM_CLASSES, activation="softmax"),
  ])


class _Clock(keras.callbacks.Callback):
  """Cumulative training seconds with fit's validation and our test evaluation left out."""

  def __init__(self, start: float, test_images: np.ndarray, test_labels: np.ndarray,
               target: float | None) -> None:
    super().__init__()
    self.start, self.off = start, 0.0
    self.test_images, self.test_labels, self.target = test_images, test_labels, target
    self.records: list[dict] = []

  def on_test_begin(self, logs=None) -> None:
    self._test_start = time.perf_counter()

  def on_test_end(self, logs=None) -> None:
    self.off += time.perf_counter() - self._test_start

  def on_epoch_end(self, epoch: int, logs=None) -> None:
    now = time.perf_counter()
    probs = self.model.predict(self.test_images, batch_size=1000, verbose=0)
    accuracy = float(np.mean(np.argmax(probs, -1) == self.test_labels))
    self.records.append({"epoch": epoch + 1, "train_seconds": now - self.start - self.off,
                         "test_accuracy": accuracy})
    if self.target is not None and accuracy >= self.target:
      self.model.stop_training = True
    self.off += time.perf_counter() - now


def train(train_images: np.ndarray, train_labels: np.ndarray, test_images: np.ndarray,
          test_labels: np.ndarray, *, epochs: int, seed: int = 0,
          target: float | None = None) -> list[dict]:
  """Runs the recipe; one ``{"epoch", "train_seconds", "test_accuracy"}`` record per epoch.

  Images are uint8 ``[N, 28, 28, 1]``; ``train_seconds`` is cumulative (see module docstring).
  Stops after the first epoch whose test accuracy reaches ``target``, when given.
  """
  keras.utils.set_random_seed(seed)
  test_x = test_images.astype("float32") / 255
  test_y = np.asarray(test_labels)

  start = time.perf_counter()
  x = train_images.astype("float32") / 255
  y = keras.utils.to_categorical(train_labels, NUM_CLASSES)
  model = _model()
  model.compile(loss="categorical_crossentropy", optimizer="adam", metrics=["accuracy"])
  clock = _Clock(start, test_x, test_y, target)
  model.fit(x, y, batch_size=BATCH_SIZE, epochs=epochs, validation_split=VALIDATION_SPLIT,
            callbacks=[clock], verbose=0)
  return clock.records
