"""The docs cannot rot: generated field docs are current, and what README and docs/ name exists."""

from __future__ import annotations

import importlib.util
import re

import pytest

from conftest import REPO
from jaxdigits import config as config_lib, config_doc, models
from jaxdigits.models import classic

DOCS = [REPO / "README.md", *sorted((REPO / "docs").glob("*.md"))]
README = (REPO / "README.md").read_text()


def test_config_md_is_the_generated_one():
  committed = (REPO / "docs" / "config.md").read_text()
  assert committed == config_doc.markdown(), (
      "docs/config.md is stale: run python -m jaxdigits.config_doc > docs/config.md")


def test_every_config_and_model_field_is_described():
  assert config_doc.problems() == []
  generated = config_doc.markdown()
  for field in config_doc.flat_defaults():
    assert f"| `{field}` |" in generated
  for name in [*models.REGISTRY, *models.CLASSIC]:
    assert f"`model.name = '{name}'`" in generated
    for field in models.config_fields(name):
      assert re.search(rf"### `model.name = '{name}'`[^#]*\| `model.{field}` \|", generated), (
          name, field)


def test_a_new_field_without_a_description_is_reported(monkeypatch):
  plain = config_lib.defaults

  def with_new_field():
    config = plain()
    config.train.new_field = 1
    return config

  monkeypatch.setattr(config_lib, "defaults", with_new_field)
  assert config_doc.problems() == [
      "train.new_field: no description in jaxdigits/config_doc.py FIELDS"]
  monkeypatch.undo()

  class Widened(models.REGISTRY["mlp"]):
    width_multiplier: int = 1

  monkeypatch.setitem(models.REGISTRY, "mlp", Widened)
  monkeypatch.setitem(classic.FIELDS, "knn", {**classic.FIELDS["knn"], "metric": "l2"})
  found = config_doc.problems()
  assert any(p.startswith("model.width_multiplier (model mlp): no description") for p in found)
  assert any(p.startswith("model.metric (model knn): no description") for p in found)


def test_readme_is_short_and_keeps_its_commands():
  assert len(README.splitlines()) <= 250
  test_cmd = re.search(r"<!-- test-command -->\n```\n(.+)\n```\n<!-- /test-command -->", README)
  assert test_cmd and test_cmd.group(1) == (
      "python3 -m venv .venv && .venv/bin/pip install -q -e '.[dev]' && "
      ".venv/bin/python -m pytest -q -n 2 --dist loadfile")
  main_cmd = re.search(r"<!-- main-command -->\n```\n(.+)\n```\n<!-- /main-command -->", README)
  assert main_cmd and "python -m jaxdigits.main --config=configs/cnn.py" in main_cmd.group(1)
  assert 'pytest -m "not slow"' in README


@pytest.mark.parametrize("doc", DOCS, ids=lambda p: p.name)
def test_every_named_command_module_exists(doc):
  modules = set(re.findall(r"python -m (jaxdigits(?:\.\w+)+)", doc.read_text()))
  missing = [m for m in sorted(modules) if importlib.util.find_spec(m) is None]
  assert not missing, f"{doc.name} names modules that do not exist: {missing}"


@pytest.mark.parametrize("doc", DOCS, ids=lambda p: p.name)
def test_every_named_repository_path_exists(doc):
  paths = set(re.findall(r"(?<![\w/.])((?:configs|benchmarks|jaxdigits|tests|launch|docs)/"
                         r"[\w/.-]*\w\.(?:py|md|sh))\b", doc.read_text()))
  missing = sorted(p for p in paths if not (REPO / p).exists())
  assert not missing, f"{doc.name} names files that do not exist: {missing}"


@pytest.mark.parametrize("doc", DOCS, ids=lambda p: p.name)
def test_every_named_config_override_is_a_field(doc):
  known = set(config_doc.flat_defaults()) | {
      f"model.{f}" for n in [*models.REGISTRY, *models.CLASSIC] for f in models.config_fields(n)}
  named = set(re.findall(r"--config\.([\w.]+)=", doc.read_text()))
  assert named or doc.name != "README.md"
  assert not named - known, f"{doc.name} overrides fields that do not exist: {named - known}"


@pytest.mark.parametrize("doc", DOCS, ids=lambda p: p.name)
def test_every_named_test_exists(doc):
  for path, name in re.findall(r"(tests/test_\w+\.py)::(\w+)", doc.read_text()):
    assert f"def {name}(" in (REPO / path).read_text(), f"{doc.name}: {path}::{name} is gone"


def _anchors(markdown: str) -> set[str]:
  """GitHub's heading anchors: lower case, punctuation dropped, spaces to hyphens."""
  headings = re.findall(r"^#+ (.+)$", markdown, flags=re.M)
  return {re.sub(r"[^\w\- ]", "", h.strip().lower()).replace(" ", "-") for h in headings}


@pytest.mark.parametrize("doc", DOCS, ids=lambda p: p.name)
def test_every_link_into_the_docs_resolves(doc):
  links = re.findall(r"\]\(((?:\.\./|docs/)?[\w.-]+\.md)?(?:#([\w-]+))?\)", doc.read_text())
  assert links or doc.name == "config.md"
  for target, anchor in links:
    path = (doc.parent / target) if target else doc
    assert path.exists(), f"{doc.name} links to a missing file {target}"
    if anchor:
      assert anchor in _anchors(path.read_text()), f"{doc.name}: no #{anchor} in {path.name}"
