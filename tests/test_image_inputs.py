"""Every kind of image file a user can hand to predict: a prediction or one line naming it.

Issue 18's cases, each as a generated file: high-bit-depth, CMYK, palette with transparency,
alpha, EXIF rotation, animations, and the files that cannot be read (truncated, empty, not an
image, a noise-only photo, a decompression bomb, over the pixel limit). One predict run over
all of them with the shipped CNN: the readable ones are 7, each other one is named once.
"""

from __future__ import annotations

import io
import json
import struct
import zlib
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageDraw

from jaxdigits.cli import predict as predict_cli
from jaxdigits.errors import ImageError
from jaxdigits.inference import preprocess


def seven(size: tuple[int, int] = (200, 240), ink: int = 20, paper: int = 235) -> Image.Image:
  """A clear 7, dark on light paper, as mode L."""
  im = Image.new("L", size, paper)
  w, h = size
  ImageDraw.Draw(im).line([(0.25 * w, 0.2 * h), (0.75 * w, 0.2 * h), (0.45 * w, 0.85 * h)],
                          fill=ink, width=18)
  return im


def header_only_png(width: int, height: int) -> bytes:
  """A PNG whose header claims width x height and that holds no pixel data at all.

  Refused with the size message only if the size is checked before decoding: decoding it
  would fail as truncated instead (and a real 20000x20000 file would cost gigabytes).
  """
  def chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(
        ">I", zlib.crc32(kind + data))
  ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)  # 8-bit RGB
  return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IEND", b"")


def _palette_seven() -> Image.Image:
  # Index 0 is transparent paper (its colour black: flattening must not read it as ink).
  p = Image.fromarray(np.where(np.asarray(seven()) < 128, 1, 0).astype(np.uint8), "P")
  p.putpalette([0, 0, 0, 30, 30, 30])
  p.info["transparency"] = 0
  return p


def _exif_rotated(fmt: str) -> bytes:
  # Stored turned 90 degrees, with Orientation 6 saying "turn it back": read raw, it is no 7.
  exif = Image.Exif()
  exif[0x0112] = 6
  buf = io.BytesIO()
  seven().rotate(90, expand=True).convert("RGB").save(buf, fmt, exif=exif.tobytes())
  return buf.getvalue()


def _noisy_photo() -> Image.Image:
  # Dark grainy paper and one faint stroke within the grain: blank once the noise is removed.
  rng = np.random.default_rng(0)
  grey = np.full((240, 200), 120.0) + rng.normal(0, 25, (240, 200))
  grey[100:110, 40:160] -= 60
  return Image.fromarray(np.clip(grey, 0, 255).astype(np.uint8)).convert("RGB")


def _write_cases(d: Path) -> tuple[list[Path], dict[Path, str]]:
  """(files in order, {unreadable file: what its line says}); every readable file is a 7."""
  s = seven()
  sixteen = np.asarray(s, np.uint16) * 257
  Image.fromarray(sixteen).save(d / "grey16.png")  # mode I;16
  Image.fromarray(sixteen.astype(np.int32)).save(d / "grey32.tif")  # mode I
  Image.fromarray(np.asarray(s, np.float32) / 255).save(d / "float.tif")  # mode F, 0..1
  s.convert("CMYK").save(d / "cmyk.jpg")
  _palette_seven().save(d / "palette.png", transparency=0)
  Image.merge("LA", [s, Image.new("L", s.size, 255)]).save(d / "la.png")
  s.convert("RGBA").save(d / "rgba.png")
  (d / "exif.jpg").write_bytes(_exif_rotated("JPEG"))
  blank = Image.new("L", s.size, 235)  # the later frame: taking it would say "blank"
  s.save(d / "anim.gif", save_all=True, append_images=[blank], duration=100, loop=0)
  s.save(d / "anim.png", save_all=True, append_images=[blank], duration=100)
  buf = io.BytesIO()
  s.save(buf, "PNG")
  (d / "truncated.png").write_bytes(buf.getvalue()[:len(buf.getvalue()) // 2])
  (d / "empty.png").write_bytes(b"")
  (d / "notes.png").write_text("not an image\n")
  _noisy_photo().save(d / "noisy_photo.jpg", quality=80)
  (d / "bomb.png").write_bytes(header_only_png(20000, 20000))  # PIL's own bomb refusal
  (d / "60mp.png").write_bytes(header_only_png(10000, 6000))  # under PIL's, over ours
  bad = {d / "truncated.png": "truncated", d / "empty.png": "empty (0 bytes)",
         d / "notes.png": "not an image", d / "noisy_photo.jpg": "blank once its noise",
         d / "bomb.png": "more pixels than jaxdigits reads (50 megapixels)",
         d / "60mp.png": "10000x6000 pixels is more than jaxdigits reads (50 megapixels)"}
  good = ["grey16.png", "grey32.tif", "float.tif", "cmyk.jpg", "palette.png", "la.png",
          "rgba.png", "exif.jpg", "anim.gif", "anim.png"]
  files = [d / good[0], *bad, *(d / g for g in good[1:])]  # failures amid the batch
  return files, bad


@pytest.fixture(scope="module")
def cases(tmp_path_factory):
  return _write_cases(tmp_path_factory.mktemp("image_cases"))


def test_one_predict_run_reads_every_readable_file_and_names_each_bad_one(cases, capsys):
  files, bad = cases
  # The shipped CNN: the 16-bit 7 read as "blank" by exactly this model before.
  assert predict_cli.main(["--json", *map(str, files)]) == 1  # some failed: 1, not 2
  out = capsys.readouterr()
  rows = json.loads(out.out)
  assert [r["file"] for r in rows] == list(map(str, files))
  for path, row in zip(files, rows):
    if path in bad:
      assert set(row) == {"file", "error"} and bad[path] in row["error"], row
    else:
      assert row.get("digit") == 7 and row["probability"] > 0.9, row
  lines = out.err.strip().splitlines()
  assert len(lines) == len(bad), lines
  for path, reason in bad.items():
    line, = [l for l in lines if f"{path}:" in l]
    assert line.startswith("jaxdigits.predict: error:") and reason in line


def test_sixteen_bit_and_float_images_give_the_8_bit_input(cases):
  files, _ = cases
  want = preprocess.to_mnist_style(seven()).astype(int)
  for name in ("grey16.png", "grey32.tif", "float.tif"):
    got = preprocess.to_mnist_style(files[0].parent / name).astype(int)
    assert np.abs(got - want).max() <= 1, name  # scaled: 257 * v / 257, not clipped at 255


def test_exif_orientation_is_applied_before_preprocessing():
  upright = preprocess.to_mnist_style(seven().convert("RGB"))
  turned = preprocess.to_mnist_style(_exif_rotated("PNG"))
  np.testing.assert_array_equal(turned, upright)  # PNG: lossless, so exactly the same input
  assert preprocess.open_image(_exif_rotated("PNG")).size == seven().size


def test_pixel_limit_is_checked_from_the_header_at_the_boundary():
  side = int(preprocess.MAX_PIXELS ** 0.5)
  at_limit = header_only_png(preprocess.MAX_PIXELS // side, side)
  with pytest.raises(ImageError, match="corrupt or truncated"):  # allowed, so it is decoded
    preprocess.open_image(at_limit, name="at_limit.png")
  with pytest.raises(ImageError, match=r"^over\.png: .* more than jaxdigits reads"):
    preprocess.open_image(header_only_png(preprocess.MAX_PIXELS // side + 1, side),
                          name="over.png")


def test_open_image_names_the_file_it_is_given_as_bytes():
  with pytest.raises(ImageError, match=r"^upload\.jpg: the file is empty"):
    preprocess.open_image(b"", name="upload.jpg")
  with pytest.raises(ImageError, match=r"^<bytes>: not an image"):
    preprocess.to_ink(b"plain text")
  buf = io.BytesIO()
  seven().save(buf, "PNG")
  np.testing.assert_array_equal(preprocess.to_mnist_style(buf.getvalue()),
                                preprocess.to_mnist_style(seven()))


@pytest.mark.parametrize("array, reason", [
    (np.zeros((0, 5)), "no pixels"),
    (np.zeros((0, 5, 3)), "no pixels"),
    (np.full((8, 8), np.nan, np.float32), "NaN or infinite"),
    (np.zeros((8, 8, 5)), "expected an image array"),
    (np.zeros((8, 8), object), "numeric pixels"),
])
def test_odd_arrays_are_image_errors(array, reason):
  with pytest.raises(ImageError, match=reason):
    preprocess.to_mnist_style(array)


def test_uint16_arrays_are_scaled_and_huge_arrays_refused():
  eight = np.asarray(seven())
  np.testing.assert_array_equal(preprocess.to_mnist_style(eight.astype(np.uint16) * 257),
                                preprocess.to_mnist_style(eight))
  huge = np.broadcast_to(np.uint8(0), (preprocess.MAX_PIXELS // 1000 + 1, 1000))  # no copy
  with pytest.raises(ImageError, match="more than jaxdigits reads"):
    preprocess.to_ink(huge)
