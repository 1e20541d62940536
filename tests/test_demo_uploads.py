"""The demo's uploads: kept in a folder the demo owns, pruned while it serves, gone after."""

from __future__ import annotations

import os
import signal
import time

import httpx
from PIL import Image

from demo_server import demo_process
from jaxdigits.inference import demo


def _files(folder):
  return [p for p in folder.rglob("*") if p.is_file()]


def test_unpredicted_uploads_are_pruned_and_the_folder_deleted_on_sigterm(tmp_path):
  base = tmp_path / "tmp"
  base.mkdir()
  stale = base / "jaxdigits-demo-999999999-dead"  # a SIGKILLed demo's folder: no such pid
  stale.mkdir()
  (stale / "old.png").write_bytes(b"x")
  Image.new("L", (64, 64), 255).save(tmp_path / "digit.png")
  with demo_process("--upload_max_age_s=2", log=tmp_path / "server.log",
                    env={"TMPDIR": str(base)}) as (url, proc):
    folders = list(base.glob("jaxdigits-demo-*"))
    assert not stale.exists()
    assert len(folders) == 1, folders
    folder = folders[0]
    with (tmp_path / "digit.png").open("rb") as f:  # uploaded, never predicted
      paths = httpx.post(url + "gradio_api/upload", files={"files": f}, timeout=30).json()
    assert paths and all(str(folder) in p for p in paths), paths
    assert _files(folder), "the upload is not in the demo's folder"
    deadline = time.monotonic() + 20
    while _files(folder) and time.monotonic() < deadline:
      time.sleep(0.5)
    assert not _files(folder), "an upload older than --upload_max_age_s was kept"
    (folder / "late.png").write_bytes(b"x" * 10)  # one more, deleted with the folder
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=30) == 0, (tmp_path / "server.log").read_text()
  assert not folder.exists(), "the upload folder outlived the server"


def test_prune_keeps_the_folder_under_its_cap(tmp_path):
  for i in range(5):
    (tmp_path / f"up{i}").mkdir()
    (tmp_path / f"up{i}" / "f.png").write_bytes(b"x" * 1000)
    t = time.time() - 100 + i  # oldest first
    os.utime(tmp_path / f"up{i}" / "f.png", (t, t))
  demo._prune(tmp_path, max_bytes=2500, max_age_s=3600)  # pylint: disable=protected-access
  assert sorted(p.parent.name for p in _files(tmp_path)) == ["up3", "up4"]
  assert sorted(p.name for p in tmp_path.iterdir()) == ["up3", "up4"]  # empty folders gone
