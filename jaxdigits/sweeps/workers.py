"""Several workers on one study: who runs which trial, and what a dead worker leaves behind.

Any number of ``python -m jaxdigits.sweep`` processes may share a sweep workdir (and, with
``--storage``, a database). Two OS file locks (``flock``; the OS drops them when a process
dies, so a crash never leaves one held) keep them honest:

- ``WORKDIR/.ask.lock``, held while a worker counts the study's trials and asks new ones, so
  that together they ask exactly the trials the sweep requests, never one more;
- ``WORKDIR/trial_NNN/.worker.lock``, held by the worker training that trial, taken before
  the ask lock is let go. Optuna's journal storage has no heartbeat: a RUNNING trial whose
  lock is free lost its worker. ``retry_dead`` marks it FAIL (``retried``) and enqueues its
  parameters again, for the same folder, so the retry resumes from its checkpoints.

A trial's folder is its ``dir`` user attribute: ``trial_NNN`` after its first number.
"""

from __future__ import annotations

import contextlib
import dataclasses
import fcntl
import json
import os
import socket
from pathlib import Path
from typing import Any, Iterator

import optuna
from optuna.trial import TrialState

from jaxdigits.errors import SweepError
from jaxdigits.sweeps import space

ASK_LOCK = ".ask.lock"
TRIAL_LOCK = ".worker.lock"
TRIAL_FILE = "trial.json"


@dataclasses.dataclass
class Claim:
  """A trial this worker asked for and holds: its folder and the lock on it."""

  trial: optuna.Trial
  dir: Path
  fd: int
  pruned: bool = False

  def release(self) -> None:
    with contextlib.suppress(OSError):
      os.close(self.fd)  # closing the file releases the lock


@contextlib.contextmanager
def ask_lock(workdir: Path) -> Iterator[None]:
  """The study's ask step, one worker at a time (blocks while another counts and asks)."""
  fd = os.open(workdir / ASK_LOCK, os.O_RDWR | os.O_CREAT, 0o644)
  try:
    fcntl.flock(fd, fcntl.LOCK_EX)
    yield
  finally:
    os.close(fd)


def _try_lock(path: Path) -> int | None:
  """A held ``flock`` on ``path`` (its file descriptor), or None if another holds it."""
  fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
  try:
    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
  except BlockingIOError:
    os.close(fd)
    return None
  os.ftruncate(fd, 0)
  os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
  return fd


def trial_dir(trial: optuna.trial.FrozenTrial | optuna.Trial) -> str:
  return trial.user_attrs.get("dir") or f"trial_{trial.number:03d}"


def prepare(study: optuna.Study, sweep: dict[str, Any], grid: list[dict[str, Any]] | None
            ) -> None:
  """Once per study (call under ``ask_lock``): records the sweep and enqueues a grid's
  points as fixed trials; a rerun refuses a study made from another sweep."""
  mine = json.dumps({k: v for k, v in sweep.items() if k != "num_trials"}, sort_keys=True,
                    default=str)
  held = study.user_attrs.get("sweep")
  if held is None:
    for point in grid or []:
      study.enqueue_trial(point)
    study.set_user_attr("sweep", mine)
  elif held != mine:
    raise SweepError(f"the study in this workdir was made by another sweep ({held}); use a "
                     f"new --workdir (only num_trials may change, to extend a study)")


def slots_used(trials: list[optuna.trial.FrozenTrial]) -> int:
  """Requested trials taken: waiting, running or finished; a failed trial that was retried
  counts through its retry."""
  return sum(1 for t in trials
             if t.state != TrialState.FAIL or not t.user_attrs.get("retried"))


def running_elsewhere(study: optuna.Study) -> int:
  return len(study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)))


def retry(study: optuna.Study, trial: optuna.trial.FrozenTrial | optuna.Trial) -> None:
  """Fails ``trial`` and enqueues its parameters for its folder (call under ``ask_lock``)."""
  # pylint: disable=protected-access
  number, storage = trial.number, study._storage
  frozen = storage.get_trial(trial._trial_id)
  if frozen.state != TrialState.RUNNING:
    return
  storage.set_trial_user_attr(trial._trial_id, "retried", True)  # counted through its retry
  study.tell(number, state=TrialState.FAIL, skip_if_finished=True)
  study.enqueue_trial(frozen.params, user_attrs={"dir": trial_dir(frozen), "retry_of": number})


def retry_dead(study: optuna.Study, workdir: Path) -> list[str]:
  """Retries every RUNNING trial whose worker lock is free (call under ``ask_lock``)."""
  dead = []
  for t in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
    folder = workdir / trial_dir(t)
    folder.mkdir(exist_ok=True)
    fd = _try_lock(folder / TRIAL_LOCK)
    if fd is None:
      continue  # its worker is alive (this process's own trials hold their locks too)
    try:
      retry(study, t)
      dead.append(folder.name)
    finally:
      os.close(fd)
  return dead


def claim(study: optuna.Study, sweep: dict[str, Any],
          distributions: dict[str, optuna.distributions.BaseDistribution], target: int,
          size: int, workdir: Path) -> tuple[list[Claim], list[str]]:
  """Up to ``size`` trials for this worker, never past ``target`` in all; and the folders of
  dead workers' trials it enqueued again."""
  claims = []
  with ask_lock(workdir):
    dead = retry_dead(study, workdir)
    trials = study.get_trials(deepcopy=False)
    waiting = sum(1 for t in trials if t.state == TrialState.WAITING)
    count = min(size, waiting + max(0, target - slots_used(trials)))
    for _ in range(count):
      seed = space.trial_seed(sweep.get("seed", 0), len(study.get_trials(deepcopy=False)))
      study.sampler = space.sampler(sweep["method"], seed, sweep.get("num_trials") or target)
      trial = study.ask(distributions)
      folder = workdir / trial_dir(trial)
      trial.set_user_attr("dir", folder.name)
      trial.set_user_attr("worker", f"{socket.gethostname()}:{os.getpid()}")
      folder.mkdir(exist_ok=True)
      fd = _try_lock(folder / TRIAL_LOCK)
      if fd is None:  # a stray process in the folder: not ours to train
        raise SweepError(f"{folder} is locked by process "
                         f"{(folder / TRIAL_LOCK).read_text().strip()}, not a sweep worker "
                         f"of this study; stop it or use a new --workdir")
      (folder / TRIAL_FILE).write_text(json.dumps(trial.params, indent=1))
      claims.append(Claim(trial, folder, fd))
  return claims, dead
