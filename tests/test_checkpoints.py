"""Checkpoints keep the latest N plus the best on validation, and know which is best."""

import jax.numpy as jnp
import numpy as np

from jaxdigits import checkpoints, config as config_lib


def test_keeps_latest_and_best_and_reports_the_best(tmp_path):
  config = config_lib.defaults()
  config.model.name = "cnn"
  config.checkpoint.keep = 1
  ckpts = checkpoints.Checkpoints(tmp_path, config)
  for step, val in [(1, 0.5), (2, 0.9), (3, 0.7), (4, 0.6)]:
    ckpts.save(step, {"w": jnp.full(3, float(step))}, {"val_accuracy": val})
  ckpts.wait()
  assert ckpts.best_step() == 2
  ckpts.close()
  reopened = checkpoints.Checkpoints(tmp_path)  # read-only, as inference opens it
  assert reopened.best_step() == 2
  assert sorted(int(p.name) for p in tmp_path.iterdir() if p.name.isdigit()) == [2, 4]
  restored = reopened.restore(2, {"w": jnp.zeros(3)})
  np.testing.assert_array_equal(restored["w"], [2.0, 2.0, 2.0])
  reopened.close()


def test_a_field_added_since_the_checkpoint_counts_as_its_default():
  config = config_lib.defaults()
  config.model.name = "cnn"
  saved = checkpoints.config_to_json(config)
  del saved["train"]["max_rotation"]  # as written before the field existed
  assert checkpoints.config_differences(saved, checkpoints.config_to_json(config)) == []
  config.train.max_rotation = 10.0
  assert checkpoints.config_differences(saved, checkpoints.config_to_json(config)) == [
      "train.max_rotation: checkpoint has 0.0, config has 10.0"]


def test_the_workdir_guard_reads_the_config_orbax_saved(tmp_path):
  """The guard reads the latest checkpoint's config without Orbax (whose manager is a
  multi-host collective); this catches a change in Orbax's layout."""
  from jaxdigits.training import workdir  # pylint: disable=g-import-not-at-top
  config = config_lib.defaults()
  config.model.name = "cnn"
  ckpts = checkpoints.Checkpoints(tmp_path / "checkpoints", config)
  for step in (1, 2):
    ckpts.save(step, {"w": jnp.zeros(2)}, {"val_accuracy": 0.5})
  ckpts.wait()
  [(where, saved)] = workdir.saved_configs(tmp_path)
  assert where == tmp_path / "checkpoints" / "2"
  assert saved == ckpts.saved_config(2) == checkpoints.config_to_json(config)
  ckpts.close()
