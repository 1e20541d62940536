"""The demo's upload folder: Gradio's cache in a temp folder the demo owns, pruned while it
serves (by age and a size cap), deleted on exit; a SIGKILLed demo's folder goes at the next start.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
import threading
import time
from pathlib import Path
from typing import Iterator

UPLOAD_MAX_BYTES = 200 * 2**20  # eight uploads at MAX_FILE_SIZE: the folder's size cap
UPLOAD_MAX_AGE_S = 600  # long enough for a page to show its upload and the views drawn from it
_FOLDER_PREFIX = "jaxdigits-demo-"


def _prune(root: Path, max_bytes: int, max_age_s: float) -> None:
  """Deletes files older than max_age_s, then the oldest until the folder fits max_bytes."""
  now = time.time()
  files = []
  for path in root.rglob("*"):
    with contextlib.suppress(OSError):  # a file Gradio is writing or another prune removed
      if path.is_file():
        st = path.stat()
        files.append((st.st_mtime, st.st_size, path))
  files.sort()
  total = sum(size for _, size, _ in files)
  for mtime, size, path in files:
    if now - mtime <= max_age_s and total <= max_bytes:
      break
    with contextlib.suppress(OSError):
      path.unlink()
      total -= size
  for folder in sorted((p for p in root.rglob("*") if p.is_dir()), reverse=True):
    with contextlib.suppress(OSError):
      folder.rmdir()  # only empty ones: Gradio puts each upload in a folder of its own


def _remove_stale_folders(base: Path) -> None:
  """Folders of demos that died without cleaning up (SIGKILL): their pid no longer runs."""
  for folder in base.glob(f"{_FOLDER_PREFIX}*"):
    try:
      os.kill(int(folder.name[len(_FOLDER_PREFIX):].split("-")[0]), 0)
    except ProcessLookupError:
      shutil.rmtree(folder, ignore_errors=True)
    except (ValueError, PermissionError, OSError):
      pass  # not ours, or a live process of another user


@contextlib.contextmanager
def upload_folder(max_bytes: int = UPLOAD_MAX_BYTES, max_age_s: float = UPLOAD_MAX_AGE_S
                  ) -> Iterator[Path]:
  """A temp folder this demo owns, as Gradio's cache: pruned while serving, deleted after.

  Gradio keeps every upload (predicted or not) and every image it serves in GRADIO_TEMP_DIR,
  by default one folder shared by all Gradio apps and never emptied. Set it before build()
  and launch(): components and the server read it when created.
  """
  base = Path(os.environ.get("GRADIO_TEMP_DIR") or tempfile.gettempdir())
  base.mkdir(parents=True, exist_ok=True)
  _remove_stale_folders(base)
  root = Path(tempfile.mkdtemp(prefix=f"{_FOLDER_PREFIX}{os.getpid()}-", dir=base))
  previous = os.environ.get("GRADIO_TEMP_DIR")
  os.environ["GRADIO_TEMP_DIR"] = str(root)
  stop = threading.Event()

  def pruner() -> None:
    while not stop.wait(min(10.0, max(0.5, max_age_s / 4))):
      _prune(root, max_bytes, max_age_s)

  thread = threading.Thread(target=pruner, name="upload-pruner", daemon=True)
  thread.start()
  try:
    yield root
  finally:
    stop.set()
    thread.join(timeout=5)
    shutil.rmtree(root, ignore_errors=True)
    if previous is None:
      os.environ.pop("GRADIO_TEMP_DIR", None)
    else:
      os.environ["GRADIO_TEMP_DIR"] = previous
