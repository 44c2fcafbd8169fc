"""Where the ranking benchmark's data comes from: a pipeline's home (its ranking frame, and the
ranker inputs its `ranker_features` feature service names), or an export of both that needs no
Feast to read."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pandas as pd

from vidrec.rawlog import RawManifest
from vidrec.settings import VidrecSettings

FRAME_FILE = "ranking_frame.parquet"
INPUTS_FILE = "ranker_inputs.json"
INPUT_KINDS = ("categorical", "numeric", "lists")  # the column lists of feature_repo's ranker_inputs
GROUND_TRUTH_DIR = "ground_truth"  # a simulated home's hidden latents, copied beside an export
GROUND_TRUTH_FILES = ("user_latents.parquet", "video_latents.parquet")


def pipeline_frame_path(settings: VidrecSettings, frame_path: Path | None = None) -> Path:
    path = frame_path or settings.artifacts_dir / "ranking_training_frame.parquet"
    if not path.is_file():
        raise SystemExit(f"{path} not found: run `vidrec pipeline` with VIDREC_HOME={settings.home} first")
    return path


def pipeline_inputs(settings: VidrecSettings) -> dict[str, list[str]]:
    """The ranker's inputs by kind, as the pipeline's `ranker_features` feature service gives
    them. The only code here that needs Feast, so it is imported here."""
    from feature_repo.feature_columns import ranker_inputs
    from feature_repo.store import feature_store

    inputs = ranker_inputs(feature_store(settings))
    return {kind: list(getattr(inputs, kind)) for kind in INPUT_KINDS}


def export_frame(settings: VidrecSettings, frame_path: Path | None, directory: Path) -> None:
    """Write what `--frame-dir` reads: the home's ranking frame, unchanged, and its ranker inputs;
    and where `vidrec simulate` wrote the home's data, its ground truth (for the ceiling rows of
    bench/ranking_ceiling.py; no model reads it)."""
    source = pipeline_frame_path(settings, frame_path)
    directory.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(source, directory / FRAME_FILE)
    ground_truth = home_ground_truth(settings)
    shutil.rmtree(directory / GROUND_TRUTH_DIR, ignore_errors=True)
    if ground_truth is not None:
        shutil.copytree(ground_truth, directory / GROUND_TRUTH_DIR)
    inputs = {**pipeline_inputs(settings), "exported_from": str(source)}
    (directory / INPUTS_FILE).write_text(json.dumps(inputs, indent=2) + "\n")


def exported_frame(directory: Path) -> tuple[pd.DataFrame, dict[str, list[str]]]:
    """The frame and ranker inputs `export_frame` wrote to `directory`."""
    for name in (FRAME_FILE, INPUTS_FILE):
        if not (directory / name).is_file():
            raise SystemExit(f"{directory / name} not found: write it where the pipeline ran with "
                             f"`bench/ranking.py --home <home> --export {directory}`")
    inputs = json.loads((directory / INPUTS_FILE).read_text())
    missing = [kind for kind in INPUT_KINDS if not isinstance(inputs.get(kind), list)]
    if missing:
        raise SystemExit(f"{directory / INPUTS_FILE} lacks the column lists {missing}; expected {list(INPUT_KINDS)}")
    return pd.read_parquet(directory / FRAME_FILE), {kind: inputs[kind] for kind in INPUT_KINDS}


def _ground_truth_in(directory: Path) -> Path | None:
    return directory if all((directory / name).is_file() for name in GROUND_TRUTH_FILES) else None


def home_ground_truth(settings: VidrecSettings) -> Path | None:
    """The home's simulator ground truth, or None unless the simulator wrote the home's raw logs
    (an import, MovieLens say, has none, and one over a simulated home leaves the old world's)."""
    manifest = RawManifest.read(settings.raw_dir)
    if manifest is None or manifest.source != "simulator":
        return None
    return _ground_truth_in(settings.ground_truth_dir)


def exported_ground_truth(directory: Path) -> Path | None:
    """The ground truth `export_frame` copied to `directory`, or None when the data had none."""
    return _ground_truth_in(directory / GROUND_TRUTH_DIR)
