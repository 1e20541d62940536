"""Property tests: any config value or command-line override gives a valid config or one
ConfigError, never another exception (issue 18)."""

import dataclasses

import ml_collections
from hypothesis import given, settings, strategies as st

from conftest import REPO
from jaxdigits import config as config_lib
from jaxdigits.cli import main as main_cli
from jaxdigits.config import ConfigError

CNN = REPO / "configs" / "cnn.py"
_scalars = st.one_of(st.none(), st.booleans(), st.integers(-2**70, 2**70),
                     st.floats(allow_nan=True, allow_infinity=True), st.text(max_size=8))
_values = st.one_of(_scalars, st.lists(_scalars, max_size=4).map(tuple),
                    st.dictionaries(st.text("abcxyz_", min_size=1, max_size=4), _scalars, max_size=3))
_PATHS = [f"{s}.{k}" for s, sec in config_lib.defaults().items() if hasattr(sec, "items")
          for k in sec] + ["model.features", "model.dense", "model.dropout", "model.kernel_size",
                           "model.padding", "model.space_to_depth", "model.convs_per_block",
                           "seed", "progress_bar"]


@settings(max_examples=300, deadline=None)
@given(st.lists(st.tuples(st.sampled_from(_PATHS), _values), min_size=1, max_size=3))
def test_random_field_values_give_a_config_error_or_a_valid_config(changes):
  raw = config_lib.load_file(CNN).to_dict()
  for path, value in changes:
    *section, name = path.split(".")
    (raw[section[0]] if section else raw)[name] = value
  try:
    config_lib.validate(ml_collections.ConfigDict(raw))
  except ConfigError:
    pass


# The real command: its flag parsing and config overrides, then validation instead of training.
_CHECK = dataclasses.replace(main_cli.COMMAND,
                             body=lambda fv, args: config_lib.validate(fv.config) and None)


@settings(max_examples=200, deadline=None)
@given(st.sampled_from(_PATHS), st.text(max_size=12))
def test_random_overrides_exit_0_or_2(path, text):
  code = _CHECK.main([f"--config={CNN}", f"--config.{path}={text}", "--workdir=/nonexistent"])
  assert code in (0, 2)


def test_the_override_path_refuses_and_accepts():
  base = [f"--config={CNN}", "--workdir=/nonexistent"]
  assert _CHECK.main([*base, "--config.model.dropout=1.5"]) == 2
  assert _CHECK.main([*base, "--config.train.learning_rate=inf"]) == 2
  assert _CHECK.main([*base, "--config.model.dropout=0.5"]) == 0
