"""Python's list of marts and dbt's marts folder name the same marts, and each is documented."""

from pathlib import Path

import yaml

from vidrec.marts import FEATURE_MARTS, Mart, mart_path

MARTS_DIR = Path(__file__).resolve().parents[2] / "dbt_project" / "models" / "marts"


def test_every_dbt_mart_is_a_mart_member_and_every_member_a_dbt_mart():
    in_dbt = {path.stem for path in MARTS_DIR.glob("*.sql")}

    assert in_dbt == {mart.value for mart in Mart}


def test_every_mart_is_described_in_the_marts_yml():
    documented = yaml.safe_load((MARTS_DIR / "_marts__models.yml").read_text())["models"]

    described = {model["name"] for model in documented if model.get("description")}
    assert {mart.value for mart in Mart} <= described


def test_a_mart_lives_at_its_name_under_the_marts_dir(tmp_path):
    assert mart_path(tmp_path, Mart.VIDEO_CATALOG) == tmp_path / "video_catalog.parquet"
    assert all(mart in Mart for mart in FEATURE_MARTS)
