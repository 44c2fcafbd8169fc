"""The trained candidate generator as one artifact: model weights, the vocabularies that map ids
to rows of its embedding tables, the encoded catalog, the example-age scale and the config.

Serving loads the bundle and calls `user_embeddings` per request and `video_embeddings` when it
(re)builds the faiss index; both encode inputs with the saved vocabularies, so they see exactly
what training saw. Layout of a saved bundle directory:

    config.json        RetrievalConfig fields
    vocabularies.json  {name: [token, ...]} (index = position + 1; 0 = unknown)
    model.pt           CandidateGenerator state_dict
    catalog.npz        video_ids, their encoded features and upload days (the catalog at training time)
    metadata.json      example_age_scale, training metrics, format_version
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from models.retrieval.config import RetrievalConfig
from models.retrieval.features import VideoInputs, encode_users, encode_videos
from models.retrieval.freshness import epoch_days
from models.retrieval.model import CandidateGenerator, VocabularySizes
from models.retrieval.vocabulary import Vocabulary
from models.safe_loading import load_arrays, load_weights

FORMAT_VERSION = 1
_CHUNK_ROWS = 8192


@dataclass
class RetrievalBundle:
    model: CandidateGenerator
    vocabularies: dict[str, Vocabulary]
    config: RetrievalConfig
    catalog_video_ids: np.ndarray  # (videos,) int64, row order of `catalog_inputs`
    catalog_inputs: VideoInputs
    example_age_scale: float  # example_age_days is divided by this before entering the model
    metrics: dict[str, float] = field(default_factory=dict)
    catalog_upload_days: np.ndarray | None = None  # (videos,) float64 epoch days, NaN if unknown

    @torch.no_grad()
    def score_catalog(self, frame: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
        """(video_ids (n,), scores float32 (len(frame), n)) of every training-catalog video: the
        training logit u · v / temperature, plus the freshness logit at each row's
        `reference_time` when the model has one (then that column is required)."""
        user_vectors = torch.from_numpy(self.user_embeddings(frame))
        video_ids, video_vectors = self.video_embeddings()
        scores = user_vectors @ torch.from_numpy(video_vectors).T / self.config.temperature
        if self.config.video_age_logit:
            if "reference_time" not in frame.columns:
                raise ValueError("this candidate generator scores freshness: the user frame needs `reference_time` "
                                 f"(the query's now); got columns {list(frame.columns)}")
            upload_days = self.catalog_upload_days
            if upload_days is None:
                upload_days = np.full(len(video_ids), np.nan)
            scores = scores + self.model.age_logits(
                torch.from_numpy(epoch_days(frame["reference_time"])), torch.from_numpy(upload_days)
            )
        return video_ids, scores.numpy().astype(np.float32)

    @torch.inference_mode()  # cheaper than no_grad: no version counters on the tensors
    def user_embeddings(self, frame: pd.DataFrame) -> np.ndarray:
        """(len(frame), dim) float32 user vectors. Columns as in the training examples, minus the
        label and split; `example_age_days` is 0 ("now", as the paper serves) unless given."""
        users = encode_users(
            frame, self.vocabularies, self.config.history_length, self.config.max_search_tokens,
            self.example_age_scale,
        )
        if self.model.training:  # (eval() walks every module: not per request)
            self.model.eval()
        chunks = [
            self.model.user_vectors(users.select(slice(start, start + _CHUNK_ROWS)))
            for start in range(0, len(users), _CHUNK_ROWS)
        ]
        if not chunks:
            return np.zeros((0, self.config.embedding_dim), dtype=np.float32)
        return torch.cat(chunks).numpy().astype(np.float32)

    @torch.no_grad()
    def video_embeddings(self, catalog: pd.DataFrame | None = None) -> tuple[np.ndarray, np.ndarray]:
        """(video_ids int64 (n,), vectors float32 (n, dim)) for the training catalog, or for
        `catalog` (same columns as the training catalog), e.g. videos uploaded since training."""
        if catalog is None:
            video_ids, videos = self.catalog_video_ids, self.catalog_inputs
        else:
            video_ids = catalog["video_id"].to_numpy(np.int64)
            videos = encode_videos(catalog, self.vocabularies, self.config.max_title_tokens)
        self.model.eval()
        chunks = [
            self.model.video_vectors(videos.select(slice(start, start + _CHUNK_ROWS)))
            for start in range(0, len(videos), _CHUNK_ROWS)
        ]
        vectors = torch.cat(chunks).numpy() if chunks else np.zeros((0, self.config.embedding_dim))
        return video_ids.astype(np.int64), vectors.astype(np.float32)

    def save(self, directory: str | Path) -> None:
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        (directory / "config.json").write_text(json.dumps(asdict(self.config), indent=2))
        (directory / "vocabularies.json").write_text(
            json.dumps({name: vocabulary.to_dict() for name, vocabulary in self.vocabularies.items()})
        )
        torch.save(self.model.state_dict(), directory / "model.pt")
        np.savez(
            directory / "catalog.npz",
            video_ids=self.catalog_video_ids,
            video=self.catalog_inputs.video.numpy(),
            creator=self.catalog_inputs.creator.numpy(),
            category=self.catalog_inputs.category.numpy(),
            title_tokens=self.catalog_inputs.title_tokens.numpy(),
            **({"upload_days": self.catalog_upload_days} if self.catalog_upload_days is not None else {}),
        )
        metadata = {
            "format_version": FORMAT_VERSION,
            "example_age_scale": self.example_age_scale,
            "metrics": self.metrics,
        }
        (directory / "metadata.json").write_text(json.dumps(metadata, indent=2))

    @classmethod
    def load(cls, directory: str | Path) -> RetrievalBundle:
        directory = Path(directory)
        metadata = json.loads((directory / "metadata.json").read_text())
        if metadata.get("format_version") != FORMAT_VERSION:
            raise ValueError(
                f"{directory} holds retrieval bundle format {metadata.get('format_version')!r}, "
                f"this code reads format {FORMAT_VERSION}"
            )
        saved_config = json.loads((directory / "config.json").read_text())
        # Options added after a bundle was saved were off when it was trained, whatever today's
        # defaults say: its weights have no tensors for them.
        for option, off in OPTIONS_ADDED_LATER.items():
            saved_config.setdefault(option, off)
        config = RetrievalConfig(**saved_config)
        vocabularies = {
            name: Vocabulary.from_dict(payload)
            for name, payload in json.loads((directory / "vocabularies.json").read_text()).items()
        }
        model = CandidateGenerator(config, vocabulary_sizes(vocabularies))
        model.load_state_dict(load_weights(directory / "model.pt"))
        model.eval()
        arrays = load_arrays(directory / "catalog.npz")
        catalog_inputs = VideoInputs(
            *(torch.from_numpy(arrays[name]) for name in ("video", "creator", "category", "title_tokens"))
        )
        video_ids = arrays["video_ids"].astype(np.int64)
        upload_days = arrays.get("upload_days")
        return cls(
            model=model,
            vocabularies=vocabularies,
            config=config,
            catalog_video_ids=video_ids,
            catalog_inputs=catalog_inputs,
            example_age_scale=float(metadata["example_age_scale"]),
            metrics={key: float(value) for key, value in metadata["metrics"].items()},
            catalog_upload_days=upload_days,
        )


# Config options introduced after the bundle format, with the value that reproduces older bundles.
OPTIONS_ADDED_LATER = {"history_recency_weights": False, "history_content": False, "weight_ema_decay": 0.0}


def vocabulary_sizes(vocabularies: dict[str, Vocabulary]) -> VocabularySizes:
    return VocabularySizes(**{name: len(vocabularies[name]) for name in VocabularySizes.__dataclass_fields__})
