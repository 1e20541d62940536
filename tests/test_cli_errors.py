"""Careless input to the real commands: exit code 2 and one stderr line naming the fix.

Every case fails before any training or evaluation, so all of them start at once (one
subprocess each) and the file takes about as long as its slowest command to start.
"""

from __future__ import annotations

import logging as py_logging
import os
import socket
import subprocess
import sys
import warnings
from pathlib import Path

import pytest
from absl import logging

from jaxdigits.cli import runner

REPO = Path(__file__).resolve().parents[1]
TIMEOUT_S = 240  # several JAX imports at once on 2 busy cores

# name → (command, its arguments (with {tmp}, {file}, {port} filled in), text the line names)
CASES = {
    "config_field_typo": ("main", ["--config=configs/cnn.py", "--workdir={tmp}/run",
                                   "--config.train.lerning_rate=0.1"], "lerning_rate"),
    "config_file_missing": ("main", ["--config={tmp}/missing.py", "--workdir={tmp}/run"],
                            "missing.py"),
    "config_file_syntax_error": ("main", ["--config={tmp}/broken.py", "--workdir={tmp}/run"],
                                 "broken.py"),
    "integer_overflow": ("main", ["--config=configs/cnn.py", "--workdir={tmp}/run",
                                  "--config.train.num_epochs=99999999999999999999"],
                         "--config.train.num_epochs"),
    "config_bound_max_shift": ("main", ["--config=configs/cnn.py", "--workdir={tmp}/run",
                                        "--config.train.max_shift=14"],
                               "config field train.max_shift: 14 pixels moves 28x28 mnist"),
    "workdir_is_a_file": ("main", ["--config=configs/cnn.py", "--workdir={file}"], "{file}"),
    "unknown_flag": ("predict", ["--chekpoint={tmp}", "digit.png"], "chekpoint"),
    "evaluate_out_is_a_file": ("evaluate", ["--workdir={tmp}/run", "--out={file}"], "{file}"),
    "demo_port_in_use": ("demo", ["--port={port}"], "--port={port}"),
    "predict_checkpoint_missing": ("predict", ["--checkpoint={tmp}/nope", "digit.png"],
                                   "{tmp}/nope"),
    "sweep_data_error": ("sweep", ["--config=configs/cnn.py", "--sweep=configs/sweeps/cnn_lr.py",
                                   "--workdir={tmp}/sweep", "--config.data.raw_dir={tmp}/empty",
                                   "--config.data.tfds_dir={tmp}/tfds"], "{tmp}/empty"),
}


@pytest.fixture(scope="module")
def outcomes(tmp_path_factory) -> dict[str, tuple[str, str, subprocess.CompletedProcess]]:
  """Runs every case at once; name → (its command, the text expected, the finished process)."""
  tmp = tmp_path_factory.mktemp("careless")
  (tmp / "broken.py").write_text("def get_config(:\n  return None\n")
  (tmp / "a_file").write_text("not a folder\n")
  (tmp / "empty").mkdir()
  busy = socket.socket()
  busy.bind(("127.0.0.1", 0))
  busy.listen()
  fill = {"tmp": str(tmp), "file": str(tmp / "a_file"), "port": str(busy.getsockname()[1])}
  # No prepared data or raw folder from the caller's environment: the sweep must find none.
  env = {k: v for k, v in os.environ.items()
         if k not in ("JAXDIGITS_RAW_DATA", "JAXDIGITS_DATA_DIR")}
  env["JAX_PLATFORMS"] = "cpu"
  procs = {}
  try:
    for name, (command, args, expected) in CASES.items():
      procs[name] = (command, expected.format(**fill), subprocess.Popen(
          [sys.executable, "-m", f"jaxdigits.{command}", *(a.format(**fill) for a in args)],
          cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
          start_new_session=True))
    done = {}
    for name, (command, expected, proc) in procs.items():
      out, err = proc.communicate(timeout=TIMEOUT_S)
      done[name] = (command, expected, subprocess.CompletedProcess(proc.args, proc.returncode,
                                                                   out, err))
    return done
  finally:
    busy.close()
    for _, _, proc in procs.values():
      if proc.poll() is None:
        os.killpg(proc.pid, 9)  # a hung JAX process ignores SIGTERM


@pytest.mark.parametrize("name", sorted(CASES))
def test_careless_input_is_one_line_and_exit_2(outcomes, name):
  command, expected, result = outcomes[name]
  assert "Traceback" not in result.stderr, result.stderr[-3000:]
  lines = result.stderr.strip().splitlines()
  assert len(lines) == 1, result.stderr[-3000:]
  assert lines[0].startswith(f"jaxdigits.{command}: error: "), lines[0]
  assert expected in lines[0], lines[0]
  assert result.returncode == 2, lines[0]


def test_help_lists_every_flag_and_exits_0(capsys):
  from jaxdigits.cli import export  # pylint: disable=g-import-not-at-top
  assert export.main(["--help"]) == 0
  out = capsys.readouterr().out
  assert all(f"--{name}" in out for name in ("workdir", "out", "verify", "verbosity"))


def _probe(record: list) -> runner.Command:
  """A command that records the log levels it runs under and warns once."""
  def body(fv, args):
    record.append((logging.get_verbosity(), py_logging.getLogger("jax").level, args))
    warnings.warn("a library's deprecation note")
  return runner.Command("probe", "probe", lambda fv: None, body, positional="words")


@pytest.mark.parametrize("argv,absl_level,warned", [([], -2, 0), (["--verbosity=0"], 0, 1)])
def test_library_noise_is_hidden_unless_verbosity_asks(argv, absl_level, warned):
  record = []
  before = logging.get_verbosity(), py_logging.getLogger("jax").level
  with warnings.catch_warnings(record=True) as caught:
    warnings.simplefilter("always")
    assert _probe(record).main([*argv, "word"]) == 0
  expected = py_logging.ERROR if absl_level == -2 else py_logging.INFO
  assert record == [(absl_level, expected, ["word"])]
  assert len(caught) == warned
  assert (logging.get_verbosity(), py_logging.getLogger("jax").level) == before  # restored


def test_a_command_without_positional_arguments_refuses_them(capsys):
  from jaxdigits.cli import report  # pylint: disable=g-import-not-at-top
  assert report.main(["--workdir=runs/x", "runs/y"]) == 2
  err, = capsys.readouterr().err.strip().splitlines()
  assert err.startswith("jaxdigits.report: error: unexpected arguments ['runs/y']")
