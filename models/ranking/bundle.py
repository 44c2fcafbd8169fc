"""The trained ranker as one artifact: weights, the fitted preprocessor and the config.

Saved directory layout: `config.json`, `preprocessor.json`, `model.pt` (state_dict),
`metadata.json` (metrics, format_version). `score` applies the saved preprocessor, so serving
transforms features exactly as training did.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from models.ranking.config import RankerConfig
from models.ranking.model import WATCH_TIME_HEAD, Ranker
from models.ranking.preprocessing import FeaturePreprocessor

FORMAT_VERSION = 1
_CHUNK_ROWS = 65_536


@dataclass
class RankerBundle:
    model: Ranker
    preprocessor: FeaturePreprocessor
    config: RankerConfig
    metrics: dict[str, float] = field(default_factory=dict)

    @torch.no_grad()
    def logits(self, frame: pd.DataFrame, head: str = WATCH_TIME_HEAD) -> np.ndarray:
        """(len(frame),) float64 raw logits of one head."""
        inputs = self.preprocessor.transform(frame)
        self.model.eval()
        chunks = [
            self.model(inputs.select(slice(start, start + _CHUNK_ROWS)))[head]
            for start in range(0, len(inputs), _CHUNK_ROWS)
        ]
        return torch.cat(chunks).double().numpy() if chunks else np.zeros(0)

    def score(self, frame: pd.DataFrame) -> np.ndarray:
        """(len(frame),) float64 expected watch seconds per impression, e^logit; rank by this."""
        return np.exp(self.logits(frame))

    def save(self, directory: str | Path) -> None:
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        (directory / "config.json").write_text(json.dumps(asdict(self.config), indent=2))
        self.preprocessor.save(directory / "preprocessor.json")
        torch.save(self.model.state_dict(), directory / "model.pt")
        metadata = {"format_version": FORMAT_VERSION, "heads": list(self.model.heads), "metrics": self.metrics}
        (directory / "metadata.json").write_text(json.dumps(metadata, indent=2))

    @classmethod
    def load(cls, directory: str | Path) -> "RankerBundle":
        directory = Path(directory)
        metadata = json.loads((directory / "metadata.json").read_text())
        if metadata.get("format_version") != FORMAT_VERSION:
            raise ValueError(
                f"{directory} holds ranker bundle format {metadata.get('format_version')!r}, "
                f"this code reads format {FORMAT_VERSION}"
            )
        config = RankerConfig(**json.loads((directory / "config.json").read_text()))
        preprocessor = FeaturePreprocessor.load(directory / "preprocessor.json")
        model = Ranker(config, preprocessor.vocabulary_sizes, preprocessor.numeric_width,
                       heads=tuple(metadata["heads"]))
        model.load_state_dict(torch.load(directory / "model.pt", weights_only=True))
        model.eval()
        metrics = {key: float(value) for key, value in metadata["metrics"].items()}
        return cls(model=model, preprocessor=preprocessor, config=config, metrics=metrics)
