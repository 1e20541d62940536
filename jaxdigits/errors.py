"""The one base error: every failure a user can cause or fix derives from ``JaxdigitsError``.

Library code raises these with a message that names the file or field and the fix; the
command runner (``jaxdigits.cli.runner``) prints that message as one line and exits 2.
Anything else escaping a command is a bug in jaxdigits, and keeps its traceback.
"""

from __future__ import annotations


class JaxdigitsError(Exception):
  """A user-facing error; ``str(e)`` is the whole message a user reads."""


class ConfigError(JaxdigitsError, ValueError):
  """A config field, config file or command-line flag holds a value jaxdigits cannot run with."""


class DataError(JaxdigitsError, RuntimeError):
  """A dataset cannot be read or prepared (missing, damaged or unreachable files)."""


class ImageError(JaxdigitsError, ValueError):
  """An image cannot be turned into a digit input."""


class CheckpointError(JaxdigitsError, RuntimeError):
  """A run folder or its checkpoints cannot be used (foreign config, damaged, locked)."""


class BundleError(JaxdigitsError, ValueError):
  """A bundle cannot be written, verified or loaded."""


class SweepError(JaxdigitsError, ValueError):
  """A sweep definition cannot be run."""


class DistributedError(JaxdigitsError, RuntimeError):
  """The multi-host runtime could not start."""
