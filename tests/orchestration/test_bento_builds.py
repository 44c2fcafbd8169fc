"""A Bento is rebuilt when a file it packages changes, and reused, by tag, while none did and the
store still holds it."""

from pathlib import Path

import pytest

from orchestration.bento_builds import build_inputs_digest, record_bento, stored_bento

PYPROJECT = """
[tool.bentoml.build]
service = "serving.service:Service"
include = ["serving/**/*.py", "pyproject.toml"]
exclude = ["**/__pycache__"]
"""


@pytest.fixture
def project(tmp_path: Path) -> Path:
    (tmp_path / "serving" / "api").mkdir(parents=True)
    (tmp_path / "serving" / "api" / "service.py").write_text("ANSWER = 1\n")
    (tmp_path / "pyproject.toml").write_text(PYPROJECT)
    return tmp_path


def _digest(project: Path) -> str:
    return build_inputs_digest(project, project / "pyproject.toml")


def test_only_a_packaged_file_changes_the_digest(project):
    before = _digest(project)
    (project / "notes.md").write_text("not packaged")
    (project / "serving" / "__pycache__").mkdir()
    (project / "serving" / "__pycache__" / "service.py").write_text("compiled")
    assert _digest(project) == before
    (project / "serving" / "api" / "service.py").write_text("ANSWER = 2\n")
    assert _digest(project) != before


def test_a_renamed_file_changes_the_digest(project):
    before = _digest(project)
    (project / "serving" / "api" / "service.py").rename(project / "serving" / "api" / "other.py")
    assert _digest(project) != before


def test_a_recorded_bento_is_reused_only_while_the_store_holds_it(tmp_path):
    home = tmp_path / "bentoml"
    bento = home / "bentos" / "vidrec_recommender" / "abc123"
    bento.mkdir(parents=True)
    (bento / "bento.yaml").write_text("service: x\n")
    assert stored_bento(home, "d1") is None
    record_bento(home, "d1", "vidrec_recommender:abc123")
    assert stored_bento(home, "d1") == "vidrec_recommender:abc123"
    assert stored_bento(home, "d2") is None  # other inputs
    (bento / "bento.yaml").unlink()  # deleted from the store (`bentoml delete`)
    assert stored_bento(home, "d1") is None


def test_a_damaged_record_means_a_rebuild_not_an_error(tmp_path):
    (tmp_path / "vidrec_bento_builds.json").write_text("{not json")
    assert stored_bento(tmp_path, "d1") is None
