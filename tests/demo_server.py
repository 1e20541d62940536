"""Starts ``python -m jaxdigits.demo`` in a subprocess of its own, for the demo tests."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Iterator

import httpx

START_TIMEOUT_S = 120  # importing gradio and JAX and compiling takes ~15 s on 2 busy cores


def free_port() -> int:
  with socket.socket() as s:
    s.bind(("127.0.0.1", 0))
    return s.getsockname()[1]


@contextlib.contextmanager
def running_demo(*args: str, log: Path) -> Iterator[str]:
  """Yields the URL of a demo server bound to 127.0.0.1; SIGKILLs its process group after."""
  with demo_process(*args, log=log) as (url, _):
    yield url


@contextlib.contextmanager
def demo_process(*args: str, log: Path, env: dict[str, str] | None = None
                 ) -> Iterator[tuple[str, subprocess.Popen]]:
  """(URL, process) of a demo server, for tests that stop it themselves; SIGKILLed after."""
  port = free_port()
  with log.open("w") as out:
    # A new session, so the kill reaches any child; SIGKILL because a JAX process can sit
    # in a thread that ignores SIGTERM.
    proc = subprocess.Popen([sys.executable, "-m", "jaxdigits.demo", "--host", "127.0.0.1",
                             "--port", str(port), *args], stdout=out, stderr=subprocess.STDOUT,
                            env={**os.environ, "PYTHONUNBUFFERED": "1", **(env or {})}, start_new_session=True)
  url = f"http://127.0.0.1:{port}/"
  try:
    deadline = time.monotonic() + START_TIMEOUT_S
    while True:
      if proc.poll() is not None:
        raise RuntimeError(f"demo server exited with {proc.returncode}:\n{log.read_text()}")
      try:
        if httpx.get(url, timeout=2).status_code == 200:
          break
      except httpx.HTTPError:
        pass
      if time.monotonic() > deadline:
        raise RuntimeError(f"demo server not up after {START_TIMEOUT_S} s:\n{log.read_text()}")
      time.sleep(0.5)
    yield url, proc
  finally:
    with contextlib.suppress(ProcessLookupError):
      os.killpg(proc.pid, signal.SIGKILL)
    proc.wait(timeout=30)
