"""`vidrec import ...` from the command line: row counts, derivations, clean errors."""

from __future__ import annotations

from pathlib import Path

from click.testing import CliRunner

from vidrec.cli import main
from vidrec.rawlog import RawManifest

FIXTURES = Path(__file__).parent / "fixtures"


def test_import_movielens_writes_raw_logs_and_says_what_it_derived(tmp_path):
    result = CliRunner().invoke(
        main, ["import", "movielens", str(FIXTURES / "movielens_csv")], env={"VIDREC_HOME": str(tmp_path)}
    )
    assert result.exit_code == 0, result.output
    assert "watches:         5 rows" in result.output
    assert "impressions: sampled, not logged" in result.output
    assert RawManifest.read(tmp_path / "raw").source == "movielens"


def test_import_kuairand_with_a_user_sample(tmp_path):
    result = CliRunner().invoke(
        main,
        ["import", "kuairand", str(FIXTURES / "kuairand"), "--limit-users", "2", "--seed", "1"],
        env={"VIDREC_HOME": str(tmp_path)},
    )
    assert result.exit_code == 0, result.output
    manifest = RawManifest.read(tmp_path / "raw")
    assert (manifest.source, manifest.parameters["limit_users"]) == ("kuairand", 2)
    assert manifest.row_counts["users"] <= 2


def test_bad_dataset_is_a_clean_error(tmp_path):
    result = CliRunner().invoke(main, ["import", "movielens", str(tmp_path)], env={"VIDREC_HOME": str(tmp_path)})
    assert result.exit_code == 1
    assert "Error:" in result.output and "not a MovieLens directory" in result.output
    assert not (tmp_path / "raw").exists()
