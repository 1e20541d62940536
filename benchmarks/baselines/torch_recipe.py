"""Baseline: the PyTorch MNIST example, re-implemented for a time-to-accuracy benchmark, on CPU.

Upstream: pytorch/examples ``mnist/main.py`` (checked at commit
77f55b912142e11fcfdf5b530231fb9c52f181e8). Settings reproduced:

* model ``Net``: conv1 1→32 3x3 → relu → conv2 32→64 3x3 → relu → max_pool2d 2 →
  dropout 0.25 → flatten → fc1 9216→128 → relu → dropout 0.5 → fc2 128→10 → log_softmax,
  default PyTorch initialisers, loss ``F.nll_loss``;
* ``optim.Adadelta(lr=1.0)`` with ``StepLR(step_size=1, gamma=0.7)`` stepped once per epoch;
* batch 64 (last, smaller batch kept, as DataLoader's default), test batch 1000, 14 epochs
  upstream (``epochs`` here);
* the upstream per-sample feed: a map-style dataset whose ``__getitem__`` does what
  torchvision's ``datasets.MNIST`` does (uint8 28x28 → ``PIL.Image`` in mode "L" →
  ``ToTensor`` → ``Normalize((0.1307,), (0.3081,))``, label as a Python int), batched by
  ``DataLoader`` in the main process (``num_workers=0``, no pinned memory: upstream's CPU
  settings);
* ``torch.manual_seed(seed)`` once at the start, as upstream (whose default seed is 1).

Threads: torch's defaults are left alone (``torch.get_num_threads()`` intra-op threads,
normally the number of physical cores; 2 on the 2-core machine these recipes were written on).

Timed (``train_seconds``, cumulative): building the train dataset and loader from the numpy
arrays, model and optimiser construction, every training step (loading and transforming
each sample, forward, backward, optimiser step) and the per-epoch scheduler step. Not timed:
building the test loader and every test evaluation.

Deviations from upstream:
* runs on CPU always (upstream uses an accelerator when one is available);
* shuffles the train set every epoch (``shuffle=True``). Upstream sets ``shuffle=True`` only
  in its accelerator DataLoader kwargs, so its CPU path trains on the file order every epoch;
  shuffling is its accelerator recipe and what the Flax baseline does;
* data arrive as uint8 NHWC numpy arrays (jaxdigits' tfds-loaded splits, whose order differs
  from the raw IDX files) instead of torchvision's download; ``ToTensor`` / ``Normalize`` are
  re-implemented with the same arithmetic because torchvision is not a dependency;
* no per-10-batch loss printing, no test-loss printing, no model saving;
* optional early stop at ``target`` test accuracy.
"""

from __future__ import annotations

import time

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F
import torch.optim as optim
from PIL import Image
from torch.optim.lr_scheduler import StepLR
from torch.utils.data import DataLoader, Dataset

LEARNING_RATE = 1.0
GAMMA = 0.7
BATCH_SIZE = 64
TEST_BATCH_SIZE = 1000
EPOCHS = 14  # upstream default; the benchmark passes its own
MEAN, STD = (0.1307,), (0.3081,)


class Net(nn.Module):
  """The upstream example's network."""

  def __init__(self) -> None:
    super().__init__()
    self.conv1 = nn.Conv2d(1, 32, 3, 1)
    self.conv2 = nn.Conv2d(32, 64, 3, 1)
    self.dropout1 = nn.Dropout(0.25)
    self.dropout2 = nn.Dropout(0.5)
    self.fc1 = nn.Linear(9216, 128)
    self.fc2 = nn.Linear(128, 10)

  def forward(self, x: torch.Tensor) -> torch.Tensor:
    x = F.relu(self.conv1(x))
    x = F.relu(self.conv2(x))
    x = self.dropout1(F.max_pool2d(x, 2))
    x = torch.flatten(x, 1)
    x = self.dropout2(F.relu(self.fc1(x)))
    return F.log_softmax(self.fc2(x), dim=1)


def _to_tensor(pic: Image.Image) -> torch.Tensor:
  # torchvision ToTensor on a mode-"L" image: HxW uint8 → 1xHxW float in [0, 1].
  img = torch.from_numpy(np.array(pic, np.uint8, copy=True))
  img = img.view(pic.size[1], pic.size[0], 1).permute((2, 0, 1)).contiguous()
  return img.to(dtype=torch.get_default_dtype()).div(255)


def _normalize(tensor: torch.Tensor) -> torch.Tensor:
  # torchvision Normalize (inplace=False): a clone, then per-channel sub_ / div_.
  tensor = tensor.clone()
  mean = torch.as_tensor(MEAN, dtype=tensor.dtype).view(-1, 1, 1)
  std = torch.as_tensor(STD, dtype=tensor.dtype).view(-1, 1, 1)
  return tensor.sub_(mean).div_(std)


class _MNIST(Dataset):
  """torchvision ``datasets.MNIST`` item access over in-memory arrays: the same per-sample work."""

  def __init__(self, images: np.ndarray, labels: np.ndarray) -> None:
    # torchvision keeps the whole split as uint8 [N, 28, 28] / int64 [N] tensors.
    self.data = torch.from_numpy(np.ascontiguousarray(images[..., 0]))
    self.targets = torch.from_numpy(np.asarray(labels, np.int64))

  def __len__(self) -> int:
    return len(self.data)

  def __getitem__(self, index: int) -> tuple[torch.Tensor, int]:
    # Pillow infers mode "L" from a 2-D uint8 array; passing mode= is deprecated in Pillow 11.3+.
    img = Image.fromarray(self.data[index].numpy())
    return _normalize(_to_tensor(img)), int(self.targets[index])


def _test_accuracy(model: Net, loader: DataLoader) -> float:
  model.eval()
  correct = 0
  with torch.no_grad():
    for data, target in loader:
      pred = model(data).argmax(dim=1, keepdim=True)
      correct += pred.eq(target.view_as(pred)).sum().item()
  return correct / len(loader.dataset)


def train(train_images: np.ndarray, train_labels: np.ndarray, test_images: np.ndarray,
          test_labels: np.ndarray, *, epochs: int, seed: int = 0,
          target: float | None = None) -> list[dict]:
  """Runs the recipe; one ``{"epoch", "train_seconds", "test_accuracy"}`` record per epoch.

  Images are uint8 ``[N, 28, 28, 1]``; ``train_seconds`` is cumulative (see module docstring).
  Stops after the first epoch whose test accuracy reaches ``target``, when given.
  """
  torch.manual_seed(seed)
  device = torch.device("cpu")
  # Test data are evaluation inputs, so they are prepared before the clock starts.
  test_loader = DataLoader(_MNIST(test_images, test_labels), batch_size=TEST_BATCH_SIZE)

  start = time.perf_counter()
  train_loader = DataLoader(_MNIST(train_images, train_labels), batch_size=BATCH_SIZE,
                            shuffle=True)
  model = Net().to(device)
  optimizer = optim.Adadelta(model.parameters(), lr=LEARNING_RATE)
  scheduler = StepLR(optimizer, step_size=1, gamma=GAMMA)
  elapsed = 0.0
  records = []
  for epoch in range(1, epochs + 1):
    model.train()
    for data, target_labels in train_loader:
      data, target_labels = data.to(device), target_labels.to(device)
      optimizer.zero_grad()
      loss = F.nll_loss(model(data), target_labels)
      loss.backward()
      optimizer.step()
    # Upstream steps the scheduler after testing; it is training work, so it is timed here.
    scheduler.step()
    elapsed += time.perf_counter() - start

    records.append({"epoch": epoch, "train_seconds": elapsed,
                    "test_accuracy": _test_accuracy(model, test_loader)})
    if target is not None and records[-1]["test_accuracy"] >= target:
      break
    start = time.perf_counter()
  return records
