"""The one command runner: absl flags in, the library called, a user error out as one line.

Every command is a ``Command``: its flags are defined on a ``flags.FlagValues`` of its own (absl
flags are process-global, and tests run several commands in one process), ``--config`` is an
``ml_collections`` config file with ``--config.FIELD=VALUE`` overrides, and ``main(argv)``
returns the exit code:

  0   done
  1   done, but some inputs failed (the command says which, e.g. unreadable images)
  2   a user error (``JaxdigitsError``, a bad flag, a missing or broken config file): one line
      ``jaxdigits.<command>: error: <message>`` on stderr naming the flag, field or file
  130 interrupted

Anything else is a bug in jaxdigits and keeps its traceback. Third-party INFO and warning
noise (absl, Orbax, tfds, JAX, Python warnings) is hidden unless ``--verbosity`` asks for it.
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging as py_logging
import re
import sys
import warnings
from typing import Callable, Iterator, NoReturn, Sequence

from absl import flags
from absl import logging
from absl.logging import converter
from ml_collections import config_flags

from jaxdigits.errors import ConfigError, JaxdigitsError

CONFIG = "config"
QUIET = -2  # absl's scale: -2 ERROR, -1 WARNING, 0 INFO, 1 DEBUG
# Python loggers that announce routine events (device fallback, checkpoint saves, dataset
# preparation) at INFO or WARNING; absl's own level is set through absl.logging.
LOGGERS = ("jax", "orbax", "tensorflow_datasets", "etils", "httpx", "gradio")
INT64 = 2**63  # every integer flag or config field must fit in 64 bits (NumPy, XLA)


@dataclasses.dataclass(frozen=True)
class Command:
  """One command line: its flags, the function it runs, and how it reports errors.

  Attributes:
    name: ``python -m jaxdigits.<name>``; also the prefix of its error lines.
    doc: what ``--help`` prints above the flags (the CLI module's docstring).
    define: defines the command's flags on the ``FlagValues`` it is given.
    body: runs the command from the parsed flags and the positional arguments; returns the
      exit code (None: 0) and raises ``JaxdigitsError`` for anything the user can fix.
    config: help text of a required ``--config`` file flag; None: the command has none.
    lock_config: refuse ``--config.FIELD`` overrides of fields the config file lacks.
    positional: what positional arguments are, for messages (e.g. "image files"); None: the
      command takes none.
  """

  name: str
  doc: str
  define: Callable[[flags.FlagValues], None]
  body: Callable[[flags.FlagValues, list[str]], int | None]
  config: str | None = None
  lock_config: bool = True
  positional: str | None = None

  def main(self, argv: Sequence[str] | None = None) -> int:
    """Runs the command on ``argv`` (flags and positional arguments, no program name)."""
    argv = list(sys.argv[1:] if argv is None else argv)
    try:
      parsed = self._parse(argv)
      if parsed is None:
        return 0  # --help
      fv, args = parsed
      with quiet(fv.verbosity):
        code = self.body(fv, args)
    except JaxdigitsError as e:
      print(f"jaxdigits.{self.name}: error: {one_line(str(e))}", file=sys.stderr)
      return 2
    except KeyboardInterrupt:
      print(f"jaxdigits.{self.name}: interrupted", file=sys.stderr)
      return 130
    return code or 0

  def run(self) -> NoReturn:
    """The ``python -m`` entry point."""
    sys.exit(self.main())

  def _parse(self, argv: list[str]) -> tuple[flags.FlagValues, list[str]] | None:
    program = f"jaxdigits.{self.name}"
    fv = flags.FlagValues()
    fv.set_gnu_getopt(True)  # flags may follow positional arguments, as with argparse
    flags.DEFINE_integer("verbosity", QUIET, "log level on absl's scale: -1 adds warnings, "
                         "0 adds INFO notes from jaxdigits and its libraries, 1 DEBUG",
                         short_name="v", flag_values=fv)
    flags.DEFINE_boolean("help", False, "show this help", short_name="h", flag_values=fv)
    if self.config is not None:
      # sys_argv: config_flags finds --config.FIELD overrides there, not in sys.argv.
      config_flags.DEFINE_config_file(CONFIG, None, self.config, flag_values=fv,
                                      lock_config=self.lock_config, sys_argv=[program, *argv])
      flags.mark_flag_as_required(CONFIG, flag_values=fv)
    self.define(fv)
    try:
      args = fv([program, *argv])[1:]
    except flags.Error as e:
      if "--help" in argv or "-h" in argv:
        return self._help(fv)
      required = re.search(r"Flag (--\S+) must have a value other than None", str(e))
      # absl says "flag --name=value: why"; the flag itself is the subject of the line.
      message = (f"{required.group(1)} is required" if required
                 else one_line(str(e)).removeprefix("flag "))
      raise ConfigError(f"{message}; see --help") from None
    # config_flags lets these escape absl's parser as they are: all are careless input.
    except (KeyError, AttributeError) as e:
      raise ConfigError(_unknown_field(e, argv)) from None
    except SyntaxError as e:
      raise ConfigError(f"--{CONFIG}={e.filename}: {e.msg} at line {e.lineno}; fix the file"
                        ) from None
    except (OSError, ImportError) as e:
      raise ConfigError(f"--config: {one_line(str(e))}") from None
    if fv.help:
      return self._help(fv)
    if args and self.positional is None:
      raise ConfigError(f"unexpected arguments {args}; {program} takes flags only (see --help)")
    if self.config is not None:
      _check_config_loaded(fv)
    _check_integers(fv)
    # Libraries may read absl's global flags; they hold nothing a command sets.
    if not flags.FLAGS.is_parsed():
      flags.FLAGS.mark_as_parsed()
    return fv, args

  def _help(self, fv: flags.FlagValues) -> None:
    args = f"\npositional arguments: {self.positional}" if self.positional else ""
    print(self.doc.strip(), args, "\nflags:", fv.get_help(include_special_flags=False), sep="\n")
    return None


MODELS_HELP = ("a bundle folder, a training workdir (or its checkpoints/ folder) or a classic "
               "run; several (repeated, or comma-separated): their ensemble")
# Here, not beside augment.TTA_VIEWS: predict --runtime=onnx must not import JAX to say it.
TTA_HELP = ("test-time augmentation: average the model's answers over shifted, "
            "turned and resized copies of each image")


def model_paths(values: Sequence[str] | None) -> list[str] | None:
  """The paths given to a repeated or comma-separated model flag; None when it is absent
  (``jaxdigits.load`` then serves the shipped model)."""
  paths = [p for value in values or () for p in value.split(",") if p]
  return paths or None


def one_line(message: str) -> str:
  """A message as one line: its lines joined, so a user error never spans the terminal."""
  return "; ".join(line.strip() for line in message.splitlines() if line.strip())


@contextlib.contextmanager
def quiet(verbosity: int) -> Iterator[None]:
  """Hides third-party log lines and Python warnings below ``verbosity`` while a command runs.

  Levels and filters are restored afterwards, so in-process callers (tests) keep theirs.
  """
  level = converter.absl_to_standard(verbosity)
  saved_absl = logging.get_verbosity()
  loggers = [py_logging.getLogger(name) for name in LOGGERS]
  saved = [lg.level for lg in loggers]
  logging.set_verbosity(verbosity)
  for lg in loggers:
    lg.setLevel(level)
  try:
    with warnings.catch_warnings():
      if verbosity < -1:
        warnings.simplefilter("ignore")
      yield
  finally:
    logging.set_verbosity(saved_absl)
    for lg, lvl in zip(loggers, saved):
      lg.setLevel(lvl)


def _unknown_field(error: LookupError | AttributeError, argv: list[str]) -> str:
  """Names the ``--config.FIELD`` override that names no field, with ml_collections' hint."""
  text = str(error).replace("\\'", "'").replace("\\n", "\n")
  missing = re.search(r"'([^']+)'", text)
  hint = re.search(r'Did you mean "([^"]+)"', text)
  key = missing.group(1) if missing else ""
  flag = next((a.split("=", 1)[0] for a in argv
               if a.lstrip("-").startswith(f"{CONFIG}.") and key in
               a.split("=", 1)[0].lstrip("-").split(".")[1:]), None)
  if flag is None:  # raised by the config file's own code
    return f"--{CONFIG}: {one_line(text)}"
  fix = f"did you mean {hint.group(1)!r}?" if hint else "see the config file for its fields"
  return f"{flag}: the config has no field {key!r}; {fix}"


def _check_config_loaded(fv: flags.FlagValues) -> None:
  # A missing file is not raised while parsing: config_flags defers it to the first access.
  try:
    fv[CONFIG].value.keys()
  except OSError:
    raise ConfigError(f"--{CONFIG}={fv[CONFIG].config_filename}: no such config file; give "
                      f"the path of one, e.g. configs/cnn.py") from None


def _check_integers(fv: flags.FlagValues) -> None:
  # Python integers never overflow, but NumPy, XLA and tfds take 64-bit ones and fail deep
  # inside with a traceback; refuse them here, naming the flag.
  for name in fv:
    flag = fv[name]
    value = flag.value
    if (flag.present and isinstance(value, int) and not isinstance(value, bool)
        and not -INT64 <= value < INT64):
      raise ConfigError(f"--{name}={value}: too large; integers must fit in 64 bits")
