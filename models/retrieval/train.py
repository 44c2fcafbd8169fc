"""Training the candidate generator: sampled softmax over in-batch and uniform negatives.

Each example's positive is its label video; the negatives are the other labels in the batch
(a popularity-skewed sample, since labels are watches) plus `num_uniform_negatives` videos drawn
uniformly from the whole catalog (so the long tail and never-watched videos are pushed around
too). With `logq_correction`, every candidate's logit is reduced by log of its expected number of
copies among the candidates, B·p(label = j) + n/|V| (p from training label frequencies, B the batch
size, n the uniform negatives, |V| the catalog). That is the per-source correction "log of the
sampling probability" with both sources summed, because a video can arrive through either; it
makes the sampled softmax an unbiased stand-in for the full softmax, which otherwise under-rates
popular videos (they are over-represented as negatives). A candidate equal to a row's label
(an "accidental hit") is masked out of that row, except the row's own positive.

With `video_age_logit`, each (example, candidate) logit also gets the learned freshness logit of
the candidate's age at the example's `reference_time` (freshness.py); examples then need a
`reference_time` column and the catalog an `upload_time` column.
"""

from __future__ import annotations

import copy
import dataclasses
import logging
import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F
from tqdm.auto import tqdm

from models.devices import training_device
from models.early_stopping import EpochSelection
from models.evaluation.metrics import evaluate_retrieval
from models.retrieval.bundle import RetrievalBundle, vocabulary_sizes
from models.retrieval.config import RetrievalConfig
from models.retrieval.features import (
    CATALOG_COLUMNS,
    USER_CATEGORICAL_FEATURES,
    USER_COLUMNS,
    UserInputs,
    VideoInputs,
    as_lists,
    encode_users,
    encode_videos,
    require_columns,
)
from models.retrieval.freshness import epoch_days
from models.retrieval.model import CandidateGenerator
from models.retrieval.vocabulary import Vocabulary
from models.warm_start import WarmStartMismatch, transfer_parameters, vocabulary_rows

logger = logging.getLogger(__name__)

EXAMPLE_COLUMNS = ("user_id", "label_video_id", "example_age_days", "split", *USER_COLUMNS)
EXAMPLE_TIME = "label_time"  # orders the train rows for the validation tail
_VALIDATION_CHUNK_LOGITS = 1 << 24  # validation scores rows against the whole catalog this many logits at a time


def build_vocabularies(train: pd.DataFrame, catalog: pd.DataFrame, config: RetrievalConfig) -> dict[str, Vocabulary]:
    """Video ids come from training watches (labels and histories), so a video nobody watched
    maps to 0 and is represented by its content alone; content vocabularies come from the catalog."""
    watched = np.concatenate(
        [train["label_video_id"].to_numpy(np.int64)]
        + [np.asarray(items, dtype=np.int64) for items in as_lists(train["history_video_ids"]) if len(items)]
    )
    vocabularies = {
        "video": Vocabulary.build(watched.tolist(), config.video_min_count),
        "search_token": Vocabulary.build(
            (token for tokens in as_lists(train["history_search_tokens"]) for token in tokens), config.token_min_count
        ),
        "title_token": Vocabulary.build(
            (token for tokens in as_lists(catalog["title_tokens"]) for token in tokens), config.token_min_count
        ),
        "creator": Vocabulary.build(catalog["creator_id"].tolist()),
        "category": Vocabulary.build(catalog["category"].tolist()),
    }
    for name in USER_CATEGORICAL_FEATURES:
        vocabularies[name] = Vocabulary.build(train[name].tolist())
    return vocabularies


def candidate_log_counts(label_positions: np.ndarray, num_videos: int, config: RetrievalConfig) -> torch.Tensor:
    """(num_videos,) log of each video's expected copies among one batch's candidates."""
    label_frequency = np.bincount(label_positions, minlength=num_videos) / len(label_positions)
    expected = config.batch_size * label_frequency + config.num_uniform_negatives / num_videos
    return torch.from_numpy(np.log(expected).astype(np.float32))


def parameter_groups(model: CandidateGenerator, config: RetrievalConfig) -> list[dict]:
    """The freshness logits and the history's recency log-weights get their own learning rate
    (`age_logit_learning_rate`, no weight decay): Adam moves each parameter by about the learning
    rate per step, so at 3e-3 a few hundred steps cannot reach logits of several units (measured:
    simulated validation Recall@50 0.1875 at 3e-3, 0.1974 at 0.05 for the freshness logits)."""
    age_parameters = list(model.video_age_logit.parameters()) if model.video_age_logit is not None else []
    if model.history_recency_logit is not None:
        age_parameters.append(model.history_recency_logit)
    if not age_parameters:
        return [{"params": list(model.parameters())}]
    age_ids = {id(parameter) for parameter in age_parameters}
    return [
        {"params": [parameter for parameter in model.parameters() if id(parameter) not in age_ids]},
        {"params": age_parameters, "lr": config.age_logit_learning_rate, "weight_decay": 0.0},
    ]


def catalog_upload_days(catalog: pd.DataFrame) -> np.ndarray:
    """(videos,) float64 upload time in epoch days, NaN where unknown (or no `upload_time` column)."""
    if "upload_time" not in catalog.columns:
        return np.full(len(catalog), np.nan)
    return epoch_days(catalog["upload_time"])


class WeightAverage:
    """Exponential moving average of the weights over training steps, with the usual warm-up
    (decay min(d, (1 + t) / (10 + t)) at step t) so short runs are not dominated by the first,
    untrained steps."""

    def __init__(self, model: torch.nn.Module, decay: float):
        self.model = copy.deepcopy(model)
        self.decay = decay
        self.steps = 0

    @torch.no_grad()
    def update(self, model: torch.nn.Module) -> None:
        self.steps += 1
        decay = min(self.decay, (1 + self.steps) / (10 + self.steps))
        for average, current in zip(self.model.parameters(), model.parameters()):
            average.lerp_(current, 1.0 - decay)
        for average, current in zip(self.model.buffers(), model.buffers()):
            average.copy_(current)  # lookup tables, not learned: the served copy takes them as they are


def sampled_softmax_loss(
    user_vectors: torch.Tensor,  # (batch, dim)
    candidate_vectors: torch.Tensor,  # (batch + uniform, dim); the first `batch` are the labels
    candidates: torch.Tensor,  # (batch + uniform,) catalog positions
    log_counts: torch.Tensor | None,  # (num_videos,) or None without logQ correction
    temperature: float,
    extra_logits: torch.Tensor | None = None,  # (batch, batch + uniform), e.g. freshness; not scaled
    positive_columns: torch.Tensor | None = None,  # (batch,) each row's own label column; None: row i's is i
    reduction: str = "mean",  # "sum" for a shard of a larger batch (distributed.py normalises)
) -> torch.Tensor:
    """Cross-entropy of each row's own label among all candidates. By default the rows are the
    whole batch and row i's label is candidate i; a rank of a distributed run passes its shard of
    the rows and where their labels sit among the global batch's candidates."""
    batch = user_vectors.shape[0]
    logits = user_vectors @ candidate_vectors.T / temperature  # (batch, batch + uniform)
    if extra_logits is not None:
        logits = logits + extra_logits
    if log_counts is not None:
        logits = logits - log_counts[candidates].unsqueeze(0)
    if positive_columns is None:
        accidental = candidates.unsqueeze(0) == candidates[:batch].unsqueeze(1)  # (batch, batch + uniform)
        accidental[:, :batch].fill_diagonal_(False)
        positive_columns = torch.arange(batch, device=logits.device)
    else:
        accidental = candidates.unsqueeze(0) == candidates[positive_columns].unsqueeze(1)
        accidental[torch.arange(batch, device=logits.device), positive_columns] = False
    logits = logits.masked_fill(accidental, float("-inf"))
    return F.cross_entropy(logits, positive_columns, reduction=reduction)


@dataclass
class TrainingData:
    """The training rows and the catalog, encoded. Built by deterministic code from the frames
    alone, so every rank of a distributed run builds the same vocabularies and row order."""

    catalog: pd.DataFrame  # deduplicated, sorted by video_id: row = catalog position
    train: pd.DataFrame  # split == 'train' rows whose label is in the catalog
    vocabularies: dict[str, Vocabulary]
    videos: VideoInputs  # (videos,) the catalog's rows
    users: UserInputs  # (train rows,)
    labels: torch.Tensor  # (train rows,) int64 catalog position of each label
    log_counts: torch.Tensor | None  # (videos,) logQ correction, None when off
    upload_days: np.ndarray  # (videos,) float64 epoch days, NaN where unknown
    example_age_scale: float
    validation: ValidationRows | None = None  # with early stopping only

    def on(self, device: torch.device, config: RetrievalConfig) -> TrainingTensors:
        return TrainingTensors(
            users=self.users.to(device),
            videos=self.videos.to(device),
            labels=self.labels.to(device),
            log_counts=self.log_counts.to(device) if self.log_counts is not None else None,
            reference_days=(torch.from_numpy(epoch_days(self.train["reference_time"])).to(device)
                            if config.video_age_logit else None),
            upload_days=torch.from_numpy(self.upload_days).to(device) if config.video_age_logit else None,
        )


@dataclass
class ValidationRows:
    """The newest train rows, held out of fitting to decide when to stop, encoded as serving
    encodes a query (example age 0)."""

    users: UserInputs
    labels: torch.Tensor  # (rows,) int64 catalog position of each label
    reference_days: torch.Tensor | None  # (rows,) float64 epoch days, with video_age_logit only

    def to(self, device: torch.device) -> ValidationRows:
        return ValidationRows(self.users.to(device), self.labels.to(device),
                              None if self.reference_days is None else self.reference_days.to(device))


def split_validation_rows(train: pd.DataFrame, share: float) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(fit rows, validation rows): the last `share` of `train` by `label_time` (row order when
    there is no such column)."""
    if EXAMPLE_TIME in train.columns:
        train = train.sort_values(EXAMPLE_TIME, kind="stable")
    cut = len(train) - round(len(train) * share)
    return train.iloc[:cut], train.iloc[cut:]


def encode_validation_rows(rows: pd.DataFrame, catalog_positions: pd.Index, vocabularies: dict[str, Vocabulary],
                           example_age_scale: float, config: RetrievalConfig) -> ValidationRows:
    users = encode_users(rows.drop(columns=["example_age_days"]), vocabularies, config.history_length,
                         config.max_search_tokens, example_age_scale)
    labels = catalog_positions.get_indexer(rows["label_video_id"].to_numpy(np.int64)).astype(np.int64)
    reference_days = torch.from_numpy(epoch_days(rows["reference_time"])) if config.video_age_logit else None
    return ValidationRows(users, torch.from_numpy(labels), reference_days)


@dataclass
class TrainingTensors:
    """What the training steps read, on the training device."""

    users: UserInputs
    videos: VideoInputs
    labels: torch.Tensor
    log_counts: torch.Tensor | None
    reference_days: torch.Tensor | None  # (train rows,) float64, with video_age_logit only
    upload_days: torch.Tensor | None  # (videos,) float64, with video_age_logit only


def prepare_training_data(examples: pd.DataFrame, catalog: pd.DataFrame, config: RetrievalConfig) -> TrainingData:
    """Keep `split == 'train'` rows whose label is in the catalog (dropping the others with a
    warning), build the vocabularies and encode rows and catalog."""
    require_columns(examples, EXAMPLE_COLUMNS, "examples")
    require_columns(catalog, CATALOG_COLUMNS, "catalog")
    catalog = catalog.drop_duplicates("video_id").sort_values("video_id").reset_index(drop=True)
    catalog_positions = pd.Index(catalog["video_id"].to_numpy(np.int64))
    train = examples[examples["split"] == "train"]
    train = train[catalog_positions.get_indexer(train["label_video_id"].to_numpy(np.int64)) >= 0]
    if len(train) < len(examples[examples["split"] == "train"]):
        logger.warning("dropped %d training rows whose label is not in the catalog",
                       int((examples["split"] == "train").sum()) - len(train))
    if train.empty:
        raise ValueError("examples has no 'train' rows with a label in the catalog")
    if config.video_age_logit:
        require_columns(train, ("reference_time",), "examples (video_age_logit needs each example's reference time)")
        require_columns(catalog, ("upload_time",), "catalog (video_age_logit needs upload times)")
    validation_rows = None
    if config.early_stopping_patience is not None:
        train, validation_rows = split_validation_rows(train, config.validation_share)
        if train.empty or validation_rows.empty:
            raise ValueError(f"examples has {len(train) + len(validation_rows)} 'train' rows with a label in the "
                             f"catalog: too few to hold out a validation share of {config.validation_share} "
                             "and fit on the rest")

    vocabularies = build_vocabularies(train, catalog, config)
    example_age_scale = max(float(train["example_age_days"].max()), 1.0)
    label_positions = catalog_positions.get_indexer(train["label_video_id"].to_numpy(np.int64))
    return TrainingData(
        catalog=catalog,
        train=train,
        vocabularies=vocabularies,
        videos=encode_videos(catalog, vocabularies, config.max_title_tokens),
        users=encode_users(train, vocabularies, config.history_length, config.max_search_tokens, example_age_scale),
        labels=torch.from_numpy(label_positions.astype(np.int64)),
        log_counts=candidate_log_counts(label_positions, len(catalog), config) if config.logq_correction else None,
        upload_days=catalog_upload_days(catalog),
        example_age_scale=example_age_scale,
        validation=(None if validation_rows is None else encode_validation_rows(
            validation_rows, catalog_positions, vocabularies, example_age_scale, config)),
    )


def new_model(data: TrainingData, config: RetrievalConfig) -> CandidateGenerator:
    """A freshly initialised model (from torch's global generator: seed it first)."""
    model = CandidateGenerator(config, vocabulary_sizes(data.vocabularies))
    model.set_video_content(data.videos)
    return model


def batch_loss(
    model: CandidateGenerator, tensors: TrainingTensors, config: RetrievalConfig,
    rows: torch.Tensor, uniform: torch.Tensor,
) -> torch.Tensor:
    """Sampled softmax of one batch (`rows` of the training rows, `uniform` catalog positions)."""
    candidates = torch.cat([tensors.labels[rows], uniform])
    age_logits = (
        model.age_logits(tensors.reference_days[rows], tensors.upload_days[candidates])
        if config.video_age_logit else None
    )  # (batch, batch + uniform)
    return sampled_softmax_loss(
        model.user_vectors(tensors.users.select(rows)),
        model.video_vectors(tensors.videos.select(candidates)),
        candidates,
        tensors.log_counts,
        config.temperature,
        age_logits,
    )


@torch.no_grad()
def validation_loss(model: CandidateGenerator, validation: ValidationRows, tensors: TrainingTensors,
                    config: RetrievalConfig) -> float:
    """Mean cross-entropy of each validation row's label among the whole catalog, scored as
    serving scores (the full softmax the sampled softmax stands in for: no sampling, no logQ)."""
    model.eval()
    videos = model.video_vectors(tensors.videos)  # (catalog, dim)
    total = torch.zeros((), dtype=torch.float64, device=videos.device)
    chunk_rows = max(1, _VALIDATION_CHUNK_LOGITS // len(videos))
    for start in range(0, len(validation.labels), chunk_rows):
        rows = slice(start, start + chunk_rows)
        logits = model.user_vectors(validation.users.select(rows)) @ videos.T / config.temperature  # (rows, catalog)
        if config.video_age_logit:
            logits = logits + model.age_logits(validation.reference_days[rows], tensors.upload_days)
        total += F.cross_entropy(logits, validation.labels[rows], reduction="sum")
    return total.item() / len(validation.labels)


def fit(
    model: CandidateGenerator,
    loss_of_batch: Callable[[torch.Tensor, torch.Tensor], torch.Tensor],
    num_rows: int,
    num_videos: int,
    config: RetrievalConfig,
    generator: torch.Generator,
    device: torch.device,
    averaged: WeightAverage | None,
    validation: Callable[[CandidateGenerator], float] | None = None,
) -> tuple[CandidateGenerator, dict[str, float]]:
    """Adam over at most `config.epochs` epochs of batches drawn from `generator`: per epoch one
    permutation of the rows cut into batches of `config.batch_size`, per batch
    `num_uniform_negatives` uniform catalog positions. `loss_of_batch(rows, uniform)` turns a
    batch into its loss (one process: `batch_loss`; a rank of a distributed run: its share).
    With `validation` (the served model → its validation loss) training stops early as
    `config.early_stopping_patience` says and the served model gets its best epoch's weights.
    Returns the model to serve (the weight average when kept) and the training metrics."""
    optimizer = torch.optim.Adam(
        parameter_groups(model, config), lr=config.learning_rate, weight_decay=config.weight_decay
    )
    served = averaged.model if averaged is not None else model
    patience = config.early_stopping_patience if validation is not None else None
    selection = EpochSelection(config.epochs, patience, config.early_stopping_min_delta)
    metrics: dict[str, float] = {}
    steps_per_epoch = math.ceil(num_rows / config.batch_size)
    loop_started = time.perf_counter()
    for epoch in range(config.epochs):
        model.train()
        order = torch.randperm(num_rows, generator=generator)
        total_loss = 0.0
        progress = tqdm(range(steps_per_epoch), desc=f"retrieval epoch {epoch + 1}/{config.epochs}",
                        disable=not config.show_progress, leave=False)
        for step in progress:
            rows = order[step * config.batch_size:(step + 1) * config.batch_size].to(device)
            uniform = torch.randint(0, num_videos, (config.num_uniform_negatives,), generator=generator)
            loss = loss_of_batch(rows, uniform.to(device))
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            if averaged is not None:
                averaged.update(model)
            total_loss += loss.item()
        metrics["train_loss"] = total_loss / steps_per_epoch
        logger.info("retrieval epoch %d/%d: train loss %.4f", epoch + 1, config.epochs, metrics["train_loss"])
        if selection.end_epoch(served, None if validation is None else (lambda: validation(served))):
            logger.info("retrieval: no validation improvement for %d epochs; keeping epoch %d",
                        patience, selection.best_epoch)
            break
    metrics["train_examples_per_second"] = num_rows * selection.epochs_run / (time.perf_counter() - loop_started)
    selection.restore_best(served)
    metrics.update(selection.metrics())
    return served, metrics


def finish_bundle(
    model: CandidateGenerator, data: TrainingData, examples: pd.DataFrame, config: RetrievalConfig,
    metrics: dict[str, float], started: float,
) -> RetrievalBundle:
    """The trained model on the CPU with what serving needs, and the holdout metrics."""
    bundle = RetrievalBundle(
        model=model.cpu().eval(),
        vocabularies=data.vocabularies,
        config=config,
        catalog_video_ids=data.catalog["video_id"].to_numpy(np.int64),
        catalog_inputs=data.videos,
        example_age_scale=data.example_age_scale,
        catalog_upload_days=data.upload_days,
    )
    metrics.update(holdout_metrics(bundle, examples, config))
    metrics["train_seconds"] = time.perf_counter() - started
    bundle.metrics = metrics
    logger.info("retrieval training done: %s", metrics)
    return bundle


def train_candidate_generator(
    examples: pd.DataFrame, catalog: pd.DataFrame, config: RetrievalConfig | None = None,
    warm_start: RetrievalBundle | None = None,
) -> RetrievalBundle:
    """Train on `split == 'train'` rows (less a validation tail with early stopping); report
    next-watch metrics on (a sample of) the holdout rows in `bundle.metrics`. Labels missing from
    the catalog are dropped with a warning. (distributed.py trains the same way with the batches
    shared out over torchrun's ranks.) With `warm_start` (the champion) the fit begins from its
    weights and runs `config.warm_start_epochs` epochs (the bundle's config records them);
    WarmStartMismatch when its architecture differs."""
    config = config or RetrievalConfig()
    torch.manual_seed(config.seed)
    generator = torch.Generator().manual_seed(config.seed)
    started = time.perf_counter()
    data = prepare_training_data(examples, catalog, config)
    device = training_device(config.device, "RetrievalConfig")
    model = new_model(data, config)
    warm_metrics = {}
    if warm_start is not None:
        warm_metrics = start_from(model, data.vocabularies, warm_start)
        config = dataclasses.replace(config, epochs=config.warm_start_epochs)
    model = model.to(device)
    tensors = data.on(device, config)
    averaged = WeightAverage(model, config.weight_ema_decay) if config.weight_ema_decay > 0 else None
    validation = (partial(validation_loss, validation=data.validation.to(device), tensors=tensors, config=config)
                  if data.validation is not None else None)
    trained, metrics = fit(
        model, partial(batch_loss, model, tensors, config), len(data.train), len(data.catalog),
        config, generator, device, averaged, validation,
    )
    return finish_bundle(trained, data, examples, config, {**warm_metrics, **metrics}, started)


def start_from(model: CandidateGenerator, vocabularies: dict[str, Vocabulary],
               champion: RetrievalBundle) -> dict[str, float]:
    """Copy the champion's weights into `model` (embedding rows through both vocabularies); the
    warm start's metrics."""
    missing = sorted({name for name in CandidateGenerator.TABLE_VOCABULARIES.values()
                      if name not in champion.vocabularies})
    if missing:
        raise WarmStartMismatch(f"the champion has no vocabularies {missing}")
    parameters = dict(model.named_parameters())
    report = transfer_parameters(model, champion.model, {
        table: vocabulary_rows(vocabularies[name], champion.vocabularies[name])
        for table, name in CandidateGenerator.TABLE_VOCABULARIES.items() if table in parameters
    })
    logger.info("candidate generator: warm start from the champion: %d parameters, %d embedding rows carried, "
                "%d new", report.parameters, report.carried_rows, report.new_rows)
    return {"warm_started": 1.0, **report.as_metrics()}


def holdout_metrics(bundle: RetrievalBundle, examples: pd.DataFrame, config: RetrievalConfig) -> dict[str, float]:
    """Next-watch metrics: for each holdout row, is its label in the top K of the whole catalog?

    One relevant item per row, so recall@K equals hit_rate@K. Nothing is excluded (users rewatch),
    and `example_age_days` is set to 0 as at serving time; the freshness logit (if on) is taken at
    each row's `reference_time`.
    """
    holdout = examples[examples["split"] == "holdout"]
    if holdout.empty:
        logger.warning("no holdout rows; skipping retrieval evaluation")
        return {}
    if len(holdout) > config.max_eval_examples:
        holdout = holdout.sample(config.max_eval_examples, random_state=config.seed)
    video_ids, scores = bundle.score_catalog(holdout.drop(columns=["example_age_days"]))
    k = min(max(config.eval_ks), len(video_ids))
    top = torch.topk(torch.from_numpy(scores), k, dim=1).indices.numpy()
    recommendations = {row: video_ids[top[row]].tolist() for row in range(len(holdout))}
    relevant = {row: {int(label)} for row, label in enumerate(holdout["label_video_id"])}
    scores = evaluate_retrieval(recommendations, relevant, config.eval_ks)
    return {f"holdout_{name}": value for name, value in scores.items()}
