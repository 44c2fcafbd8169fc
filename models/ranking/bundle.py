"""The trained ranker as one artifact: weights, the fitted preprocessor, calibrators and config.

Saved directory layout: `config.json`, `preprocessor.json`, `model.pt` (state_dict),
`calibration.json` (one calibrator per probabilistic head), `metadata.json` (metrics, the
calibration report with reliability-diagram bins, format_version). `score` applies the saved
preprocessor and calibrators, so serving transforms features exactly as training did.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from models.calibration import Calibrator, calibrator_from_dict, reliability_diagram_png
from models.ranking.config import RankerConfig
from models.ranking.model import WATCH_TIME_HEAD, Ranker
from models.ranking.preprocessing import FeaturePreprocessor
from models.safe_loading import load_weights

FORMAT_VERSION = 2
_CHUNK_ROWS = 65_536


@dataclass
class RankerBundle:
    model: Ranker
    preprocessor: FeaturePreprocessor
    config: RankerConfig
    metrics: dict[str, float] = field(default_factory=dict)
    calibrators: dict[str, Calibrator] = field(default_factory=dict)
    # head → {"method", "ece_before", "ece_after", "validation_log_loss_*", "bins_before", "bins_after"}
    calibration: dict[str, dict] = field(default_factory=dict)

    @torch.inference_mode()  # cheaper than no_grad: no version counters on the tensors
    def all_logits(self, frame: pd.DataFrame) -> dict[str, np.ndarray]:
        """Head → (len(frame),) float64 serving-mode logits (position tower at `serving_position`)."""
        inputs = self.preprocessor.transform(frame)
        if self.model.training:  # (eval() walks every module: not per request)
            self.model.eval()
        chunks = [self.model(inputs.select(slice(start, start + _CHUNK_ROWS)))
                  for start in range(0, len(inputs), _CHUNK_ROWS)]
        return {
            head: torch.cat([chunk[head] for chunk in chunks]).double().numpy() if chunks else np.zeros(0)
            for head in self.model.head_names
        }

    def logits(self, frame: pd.DataFrame, head: str = WATCH_TIME_HEAD) -> np.ndarray:
        """(len(frame),) float64 raw serving-mode logits of one head."""
        return self.all_logits(frame)[head]

    def head_values(self, frame: pd.DataFrame) -> dict[str, np.ndarray]:
        """Head → values the score combines: e^f (seconds) for watch_time, calibrated P otherwise."""
        return self._values(self.all_logits(frame))

    def _values(self, logits: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        values = {}
        for head, head_logits in logits.items():
            if head == WATCH_TIME_HEAD:
                values[head] = np.exp(head_logits)
            elif head in self.calibrators:
                values[head] = self.calibrators[head](head_logits)
            else:
                values[head] = 1.0 / (1.0 + np.exp(-head_logits))
        return values

    def with_score_weights(self, score_weights: dict[str, float]) -> RankerBundle:
        """The same model scoring with other head weights: `score_weights` is product
        configuration (RankerConfig), so a deployment may weigh the heads otherwise than training
        did without retraining (serving's VIDREC_SERVING_SCORE_WEIGHTS). A ValueError names heads
        the model lacks."""
        return replace(self, config=replace(self.config, score_weights=dict(score_weights)))

    def combine(self, values: dict[str, np.ndarray]) -> np.ndarray:
        """Σ score_weights[head] × value[head] (see RankerConfig.score_weights)."""
        length = len(next(iter(values.values())))
        score = np.zeros(length)
        for head, weight in self.config.score_weights.items():
            score += weight * values[head]
        return score

    def score(self, frame: pd.DataFrame) -> np.ndarray:
        """(len(frame),) float64 final score in watch-second units; rank by this. Needs only the
        feature columns (no labels, no position)."""
        return self.score_with_head_values(frame)[0]

    def score_with_head_values(self, frame: pd.DataFrame) -> tuple[np.ndarray, dict[str, np.ndarray]]:
        """The final score and the head values it combines, from one forward pass: serving logs
        each served item's head values beside its score, at no cost beyond keeping them."""
        values = self.head_values(frame)
        return self.combine(values), values

    def calibration_report(self) -> dict[str, dict]:
        """Head → {method, ece_before, ece_after, validation_log_loss_platt/_isotonic,
        diagram_png (bytes of the holdout reliability diagram, raw vs calibrated)}."""
        report = {}
        for head, entry in self.calibration.items():
            scalars = {key: value for key, value in entry.items() if not key.startswith("bins_")}
            if "bins_before" in entry and "bins_after" in entry:
                scalars["diagram_png"] = reliability_diagram_png(
                    pd.DataFrame(entry["bins_before"]), pd.DataFrame(entry["bins_after"]),
                    f"{head}: ECE {entry['ece_before']:.3f} → {entry['ece_after']:.3f}")
            report[head] = scalars
        return report

    def write_reliability_diagrams(self, directory: str | Path) -> dict[str, Path]:
        """Write `reliability_<head>.png` per calibrated head; returns head → path."""
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        paths = {}
        for head, entry in self.calibration_report().items():
            if "diagram_png" in entry:
                paths[head] = directory / f"reliability_{head}.png"
                paths[head].write_bytes(entry["diagram_png"])
        return paths

    def save(self, directory: str | Path) -> None:
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        (directory / "config.json").write_text(json.dumps(asdict(self.config), indent=2))
        self.preprocessor.save(directory / "preprocessor.json")
        torch.save(self.model.state_dict(), directory / "model.pt")
        calibrators = {head: calibrator.to_dict() for head, calibrator in self.calibrators.items()}
        (directory / "calibration.json").write_text(json.dumps(calibrators))
        metadata = {"format_version": FORMAT_VERSION, "heads": list(self.model.head_names),
                    "metrics": self.metrics, "calibration": self.calibration}
        (directory / "metadata.json").write_text(json.dumps(metadata, indent=2))

    @classmethod
    def load(cls, directory: str | Path) -> RankerBundle:
        """Reads format 2 and, for a champion registered before the multi-task ranker, format 1
        (a single watch_time head, no bias tower, no calibrators: scores e^f as it did)."""
        directory = Path(directory)
        metadata = json.loads((directory / "metadata.json").read_text())
        version = metadata.get("format_version")
        if version not in (1, FORMAT_VERSION):
            raise ValueError(f"{directory} holds ranker bundle format {version!r}, this code reads formats 1 and "
                             f"{FORMAT_VERSION}")
        config_fields = json.loads((directory / "config.json").read_text())
        if version == 1:
            config_fields.update(heads=tuple(metadata["heads"]), score_weights={WATCH_TIME_HEAD: 1.0},
                                 position_column=None, bias_surface_feature=None)
        config = RankerConfig(**config_fields)
        preprocessor = FeaturePreprocessor.load(directory / "preprocessor.json")
        model = Ranker(config, preprocessor.vocabulary_sizes, preprocessor.numeric_width,
                       heads=tuple(metadata["heads"]), bag_vocabulary_sizes=preprocessor.bag_vocabulary_sizes)
        # Format 1 has no bias tower; its zero-initialised offsets leave the logits unchanged.
        model.load_state_dict(load_weights(directory / "model.pt"), strict=version == FORMAT_VERSION)
        model.flush_denormal_weights()  # bundles saved before training flushed them
        model.eval()
        calibration_path = directory / "calibration.json"
        calibrators = (
            {head: calibrator_from_dict(payload) for head, payload in json.loads(calibration_path.read_text()).items()}
            if calibration_path.exists()
            else {}
        )
        metrics = {key: float(value) for key, value in metadata["metrics"].items()}
        return cls(model=model, preprocessor=preprocessor, config=config, metrics=metrics,
                   calibrators=calibrators, calibration=metadata.get("calibration", {}))
