"""metrics.jsonl: one schema, one reader (no JAX), robust to resumes and crashes."""

from __future__ import annotations

import subprocess
import sys

import pytest

from jaxdigits import records


def _final(**changes):
  fields = dict(kind="flax", best_epoch=2, val_accuracy=0.98, train_examples=54_000,
                validation_examples=6_000, test_examples=10_000, strategy="single", devices=1,
                processes=1, trials=1, train_seconds=12.0, compile_seconds=2.0)
  return records.final_record(**{**fields, **changes})


def _epoch(epoch, val):
  return records.epoch_record(epoch, train_loss=0.1, train_accuracy=0.9, val_accuracy=val,
                              epoch_seconds=2.0, images=1000)


def test_resumed_epochs_are_kept_once_last_write_winning(tmp_path):
  lines = [records.line(10, _epoch(1, 0.5)), records.line(20, _epoch(2, 0.6)),
           records.line(20, _epoch(2, 0.7)),  # killed before its checkpoint, re-run
           records.line(30, _epoch(3, 0.8)), records.line(30, _final(test_accuracy=0.97))]
  records.path(tmp_path).write_text("".join(lines))
  log = records.read(tmp_path)
  assert [(r["epoch"], r["val_accuracy"]) for r in log.epochs] == [(1, .5), (2, .7), (3, .8)]
  assert log.final["test_accuracy"] == 0.97 and log.final["best_epoch"] == 2
  assert log.epoch_seconds == 6.0


def test_a_run_resumed_past_its_final_record_is_unfinished(tmp_path):
  text = records.line(10, _epoch(1, 0.5)) + records.line(10, _final())
  records.path(tmp_path).write_text(text + records.line(20, _epoch(2, 0.6)) + '{"step": 3')
  log = records.read(tmp_path)  # the cut line is a crash mid-write: skipped
  assert log.final is None and [r["epoch"] for r in log.epochs] == [1, 2]


def test_no_metrics_reads_as_an_empty_run(tmp_path):
  assert records.read(tmp_path / "none") == records.RunLog([], None)


def test_old_classic_records_read_with_every_final_key(tmp_path):
  old = {"best_epoch": None, "val_accuracy": 0.9, "fit_seconds": 3.5, "strategy": "classic",
         "train_examples": 2000}
  records.path(tmp_path).write_text(records.line(1, old))
  final = records.read(tmp_path).final
  assert set(records.FINAL_KEYS) <= set(final)
  assert (final["kind"], final["train_seconds"], final["devices"]) == ("classic", 3.5, None)
  assert records.read(tmp_path).epoch_seconds == 3.5


@pytest.mark.parametrize("changes, match", [({"kind": "tpu"}, "kind 'tpu'"),
                                             ({"val_acc": 1.0}, r"unknown \['val_acc'\]")])
def test_a_writer_off_the_schema_fails_where_it_writes(changes, match):
  with pytest.raises(ValueError, match=match):
    _final(**changes)
  with pytest.raises(ValueError, match=r"missing \['kind'"):
    records.final_record(best_epoch=1)


def test_reading_records_imports_no_jax():
  code = "import sys, jaxdigits.records; assert 'jax' not in sys.modules, sorted(sys.modules)"
  subprocess.run([sys.executable, "-c", code], check=True, timeout=60)


def test_a_resume_drops_the_records_it_writes_again(tmp_path):
  """Killed during epoch 3's save (record written, checkpoint not), mid-line included: the
  resume from epoch 2 keeps what came before, so epoch 3 ends up in the file once."""
  lines = [records.line(10, _epoch(1, 0.5)), records.line(20, _epoch(2, 0.6)),
           records.line(20, _final()), records.line(30, _epoch(3, 0.7)), '{"step": 4']
  records.path(tmp_path).write_text("".join(lines))
  assert records.keep_through(tmp_path, 2) == 2
  assert records.path(tmp_path).read_text() == "".join(lines[:3])
  assert records.keep_through(tmp_path, 2) == 0  # nothing more to drop: the file is kept
  records.path(tmp_path).write_text(records.line(10, _epoch(1, 0.5)) + '{"step": 1')
  assert records.keep_through(tmp_path, 0) == 2 and records.path(tmp_path).read_text() == ""
  assert records.keep_through(tmp_path / "none", 3) == 0
