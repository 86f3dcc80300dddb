"""The tagger's text model, fine-tuned on the library's confirmed tags (``atlas media-tags train``).

Learned profiles (:mod:`atlas.tagging.sources.profiles`) learn each tag on top of
the embedding model's frozen vectors. Fine-tuning goes one step further: the top
``tagging.tune_layers`` transformer layers of the (local sentence-transformers)
embedding model are trained again, with a head that has one output per
confirmed tag, on the items the user tagged, for ``tagging.tune_epochs`` passes.
The lower layers stay frozen, so their output is computed once per item, and only
the top layers and the head are stored: a few MB in ``tagger_models`` (only the
newest model per embedding model is kept), not a copy of the embedding model.

The examples are those of the profiles (:func:`confirmed_examples`): an item
counts as a negative of a tag only when it carries confirmed tags of the tag's
kind, or the user removed the tag from it; the loss ignores the other pairs.

Training is deterministic (fixed seeds) and takes minutes on a CPU: 1,500 items
in about 5 minutes on two cores. It runs as the ``train-tagger`` task; the
tagger then uses the model as its source ``tuned``
(:mod:`atlas.tagging.sources.tuned`). The embedding model itself, and so every
stored vector, is unchanged.
"""

from __future__ import annotations

import contextlib
import copy
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextvars import ContextVar
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from sqlalchemy import Engine, delete, insert, select

from atlas.caches import CACHES
from atlas.config import Settings
from atlas.db import database_errors
from atlas.db.tables import tagger_models
from atlas.embeddings import get_provider
from atlas.embeddings.providers import SentenceTransformerProvider
from atlas.errors import InvalidInput, Unavailable, invalid, missing_extra
from atlas.tagging.inputs import TagInput, load_texts
from atlas.tagging.sources.profiles import ProfileTag, confirmed_examples
from atlas.tasks import Dispatcher, TaskContext, TaskOutcome, task_type

if TYPE_CHECKING:
    import numpy as np
    import numpy.typing as npt

__all__ = [
    "TrainReport",
    "TunedModel",
    "latest_tuned_model",
    "train_media_tagger",
    "train_tagger",
    "train_tagger_task",
    "training_progress",
]

#: Items per training step.
BATCH = 16
#: Items per forward pass when nothing is trained.
_INFERENCE_BATCH = 32
#: Token limit of a text (MiniLM was trained on 128-token texts).
MAX_LENGTH = 256
#: Normalised pooled vectors are scaled by this before the head (a cosine
#: similarity in -1..1 would keep the head's logits too small to train).
_SCALE = 10.0
_ENCODER_LR = 1e-4
_HEAD_LR = 2e-3
_WARMUP_STEPS = 20
_SEED = 0

#: In-process, ``(done, total)`` training steps go to this callback while it is set.
_PROGRESS: ContextVar[Callable[[int, int], None] | None] = ContextVar(
    "atlas_tuning_progress", default=None
)


@contextlib.contextmanager
def training_progress(callback: Callable[[int, int], None] | None) -> Iterator[None]:
    """Report training steps to ``callback`` while the block runs (in-process tasks only)."""
    token = _PROGRESS.set(callback)
    try:
        yield
    finally:
        _PROGRESS.reset(token)


@dataclass(frozen=True)
class TrainReport:
    """What one training did."""

    model_id: int
    items: int
    tags: int
    epochs: int
    layers: int
    loss: float
    seconds: float

    def to_dict(self) -> dict[str, Any]:
        return {
            "model_id": self.model_id,
            "items": self.items,
            "tags": self.tags,
            "epochs": self.epochs,
            "layers": self.layers,
            "loss": round(self.loss, 4),
            "seconds": round(self.seconds, 1),
        }


class _Encoder:
    """The embedding model split in two: frozen lower layers, and the top to tune."""

    def __init__(self, settings: Settings) -> None:
        provider = get_provider(settings)
        if not isinstance(provider, SentenceTransformerProvider):
            raise Unavailable(
                f"fine-tuning needs a local sentence-transformers embedding model, not "
                f"{provider.model_id} (set embedding.provider and embedding.model)"
            )
        self.model_id = provider.model_id
        first = provider.encoder[0]
        model = getattr(first, "auto_model", None)
        tokenizer = getattr(first, "tokenizer", None)
        layers = getattr(getattr(model, "encoder", None), "layer", None)
        if model is None or tokenizer is None or layers is None:
            raise Unavailable(
                f"{provider.model_id} is not a BERT-style transformer, so it cannot be fine-tuned"
            )
        self.model: Any = model
        self.tokenizer: Any = tokenizer
        self.layers: Any = layers
        self.hidden = int(self.model.config.hidden_size)
        self.max_length = min(int(getattr(first, "max_seq_length", None) or 128), MAX_LENGTH)

    def frozen_states(self, texts: Sequence[str], top: int) -> list[Any]:
        """Per text, the token states that enter the top ``top`` layers (no padding)."""
        import torch

        lower = len(self.layers) - top
        order = sorted(range(len(texts)), key=lambda i: len(texts[i]))
        states: list[Any] = [None] * len(texts)
        self.model.eval()
        with torch.no_grad():
            for start in range(0, len(order), _INFERENCE_BATCH):
                part = order[start : start + _INFERENCE_BATCH]
                batch = self.tokenizer(
                    [texts[i] for i in part],
                    padding=True,
                    truncation=True,
                    max_length=self.max_length,
                    return_tensors="pt",
                )
                lengths = batch["attention_mask"].sum(dim=1).tolist()
                inputs = {name: value.to(self.model.device) for name, value in batch.items()}
                hidden = self.model(**inputs, output_hidden_states=True).hidden_states[lower]
                # The top layers run on the CPU (a model on a GPU included).
                hidden = hidden.to("cpu")
                for row, index in enumerate(part):
                    states[index] = hidden[row, : int(lengths[row])].clone()
        return states


def _pooled(top: Any, states: Sequence[Any], hidden: int) -> Any:
    """The top layers over padded states, mean-pooled and normalised."""
    import torch

    longest = max(state.shape[0] for state in states)
    padded = torch.zeros(len(states), longest, hidden)
    mask = torch.zeros(len(states), longest)
    for row, state in enumerate(states):
        padded[row, : state.shape[0]] = state
        mask[row, : state.shape[0]] = 1.0
    extended = (1.0 - mask[:, None, None, :]) * torch.finfo(torch.float32).min
    for layer in top:
        out = layer(padded, attention_mask=extended)
        padded = out[0] if isinstance(out, tuple) else out
    pooled = (padded * mask[..., None]).sum(dim=1) / mask.sum(dim=1, keepdim=True)
    return torch.nn.functional.normalize(pooled, dim=1)


class TunedModel:
    """A stored fine-tuned model, ready to score texts."""

    def __init__(
        self,
        version: tuple[Any, ...],
        tags: list[ProfileTag],
        training: dict[str, Any],
        weights: bytes,
    ) -> None:
        #: The stored row's (id, created_at).
        self.version = version
        self.tags = tags
        self.training = training
        self._weights = weights
        self._parts: tuple[_Encoder, Any, Any] | None = None
        self._lock = threading.Lock()

    @property
    def items(self) -> int:
        return int(self.training.get("items", 0))

    def _load(self, settings: Settings) -> tuple[_Encoder, Any, Any]:
        with self._lock:
            if self._parts is None:
                try:
                    import torch
                    from safetensors.torch import load as load_tensors
                except ModuleNotFoundError:
                    raise missing_extra("torch (the fine-tuned tagger)") from None

                encoder = _Encoder(settings)
                layers = int(self.training["layers"])
                top = copy.deepcopy(encoder.layers[len(encoder.layers) - layers :]).cpu()
                head = torch.nn.Linear(encoder.hidden, len(self.tags))
                state = load_tensors(self._weights)
                top.load_state_dict(
                    {k.removeprefix("top."): v for k, v in state.items() if k.startswith("top.")}
                )
                head.load_state_dict(
                    {k.removeprefix("head."): v for k, v in state.items() if k.startswith("head.")}
                )
                top.eval()
                head.eval()
                self._parts = (encoder, top, head)
            return self._parts

    def predict(self, settings: Settings, texts: Sequence[str]) -> npt.NDArray[np.float32]:
        """Probabilities, one row per text and one column per tag."""
        import numpy as np
        import torch

        encoder, top, head = self._load(settings)
        if not texts:
            return np.zeros((0, len(self.tags)), dtype=np.float32)
        states = encoder.frozen_states(texts, int(self.training["layers"]))
        rows = []
        with torch.inference_mode():
            for start in range(0, len(states), _INFERENCE_BATCH):
                pooled = _pooled(top, states[start : start + _INFERENCE_BATCH], encoder.hidden)
                rows.append(torch.sigmoid(head(pooled * _SCALE)))
        return torch.cat(rows).numpy().astype(np.float32)


def latest_tuned_model(settings: Settings, engine: Engine) -> TunedModel | None:
    """The newest fine-tuned model for the configured embedding model (``None``: none yet)."""
    model_id = get_provider(settings).model_id
    with database_errors(engine), engine.connect() as connection:
        newest = connection.execute(
            select(tagger_models.c.id, tagger_models.c.created_at)
            .where(tagger_models.c.model == model_id)
            .order_by(tagger_models.c.id.desc())
            .limit(1)
        ).first()
        if newest is None:
            return None

        def load() -> TunedModel:
            row = connection.execute(
                select(tagger_models).where(tagger_models.c.id == newest.id)
            ).one()
            return TunedModel(
                (row.id, row.created_at),
                [ProfileTag(t["tag"], t["norm"], t["kind"], int(t["positives"])) for t in row.tags],
                dict(row.training),
                bytes(row.weights),
            )

        # The version has the time too: a database made again from scratch numbers
        # its models anew. A newer version replaces the older one of (database, model).
        return CACHES.tuned_models.get((str(engine.url), model_id, tuple(newest)), load)


def train_tagger(
    settings: Settings,
    engine: Engine,
    *,
    epochs: int | None = None,
    checkpoint: Callable[[], None] | None = None,
) -> TrainReport:
    """Fine-tune the tagger's text model on the confirmed tags and store it.

    ``checkpoint`` is called between training steps (the task's cancellation check).

    Raises ``InvalidInput`` when no tag has enough confirmed examples and
    ``Unavailable`` when the embedding model cannot be fine-tuned.
    """
    import numpy as np

    try:
        import torch
        from safetensors.torch import save as save_tensors
    except ModuleNotFoundError:
        raise missing_extra("torch (fine-tuning the tagger)") from None

    config = settings.tagging
    passes = epochs if epochs is not None else config.tune_epochs
    if passes < 1:
        raise InvalidInput(f"epochs must be at least 1, not {passes}")
    clock = time.perf_counter()
    learned = confirmed_examples(settings, engine, limit=config.tune_max_items)
    items = sorted({media_id for plan in learned for media_id in plan.examples})
    with database_errors(engine), engine.connect() as connection:
        texts: dict[int, TagInput] = load_texts(connection, items, keep_sources=False)
    usable = [media_id for media_id in items if media_id in texts and texts[media_id].has_words]
    row_of = {media_id: row for row, media_id in enumerate(usable)}
    labels = np.zeros((len(usable), len(learned)), dtype=np.float32)
    judged = np.zeros_like(labels)
    for column, plan in enumerate(learned):
        for media_id, carries in zip(plan.examples, plan.labels, strict=True):
            row = row_of.get(media_id)
            if row is not None:
                judged[row, column] = 1.0
                labels[row, column] = float(carries)
    keep = [c for c in range(len(learned)) if 0 < labels[:, c].sum() < judged[:, c].sum()]
    if not keep or not usable:
        raise InvalidInput(
            f"nothing to learn yet: a tag needs {config.profile_min_examples} items with "
            f"words that carry it as a confirmed tag, and as many of its kind that do not "
            f"(tagging.profile_min_examples)"
        )
    tags = [learned[c].tag for c in keep]
    labels, judged = labels[:, keep], judged[:, keep]

    encoder = _Encoder(settings)
    layers = min(config.tune_layers, len(encoder.layers))
    states = encoder.frozen_states([texts[media_id].text for media_id in usable], layers)
    steps_per_epoch = -(-len(usable) // BATCH)
    total = passes * steps_per_epoch
    report = _PROGRESS.get()
    with torch.random.fork_rng():
        torch.manual_seed(_SEED)
        top = copy.deepcopy(encoder.layers[len(encoder.layers) - layers :]).cpu()
        head = torch.nn.Linear(encoder.hidden, len(tags))
        optimiser = torch.optim.AdamW(
            [
                {"params": list(top.parameters()), "lr": _ENCODER_LR},
                {"params": list(head.parameters()), "lr": _HEAD_LR},
            ],
            weight_decay=0.01,
        )
        schedule = torch.optim.lr_scheduler.LambdaLR(
            optimiser,
            lambda step: min(1.0, (step + 1) / _WARMUP_STEPS) * max(0.0, 1.0 - step / total),
        )
        targets, weights = torch.from_numpy(labels), torch.from_numpy(judged)
        top.train()
        done, loss_sum, loss_count = 0, 0.0, 0
        for epoch in range(passes):
            order = np.random.RandomState(_SEED + epoch).permutation(len(usable))
            for start in range(0, len(order), BATCH):
                rows = order[start : start + BATCH].tolist()
                logits = head(_pooled(top, [states[r] for r in rows], encoder.hidden) * _SCALE)
                mask = weights[rows]
                losses = torch.nn.functional.binary_cross_entropy_with_logits(
                    logits, targets[rows], reduction="none"
                )
                loss = (losses * mask).sum() / mask.sum().clamp(min=1.0)
                optimiser.zero_grad()
                loss.backward()
                optimiser.step()
                schedule.step()
                done += 1
                if checkpoint is not None:
                    checkpoint()
                if epoch == passes - 1:
                    loss_sum, loss_count = loss_sum + loss.item(), loss_count + 1
                if report is not None:
                    report(done, total)
    state = {f"top.{k}": v.detach().contiguous() for k, v in top.state_dict().items()}
    state.update({f"head.{k}": v.detach().contiguous() for k, v in head.state_dict().items()})
    seconds = time.perf_counter() - clock
    training = {
        "layers": layers,
        "epochs": passes,
        "items": len(usable),
        "max_length": encoder.max_length,
        "loss": loss_sum / max(loss_count, 1),
        "seconds": round(seconds, 1),
    }
    described = [
        {"tag": t.tag, "norm": t.norm, "kind": t.kind, "positives": t.positives} for t in tags
    ]
    with database_errors(engine), engine.begin() as connection:
        inserted = connection.execute(
            insert(tagger_models).values(
                model=encoder.model_id,
                tags=described,
                training=training,
                weights=save_tensors(state),
            )
        ).inserted_primary_key
        assert inserted is not None
        row_id = int(inserted[0])
        connection.execute(
            delete(tagger_models).where(
                tagger_models.c.model == encoder.model_id, tagger_models.c.id != row_id
            )
        )
    return TrainReport(
        model_id=int(row_id),
        items=len(usable),
        tags=len(tags),
        epochs=passes,
        layers=layers,
        loss=float(training["loss"]),
        seconds=seconds,
    )


@task_type("train-tagger", retries=0)
def train_tagger_task(ctx: TaskContext, epochs: int | None = None) -> dict[str, Any]:
    """Fine-tune the tagger's text model on the library's confirmed tags."""
    report = train_tagger(
        ctx.settings, ctx.engine, epochs=epochs, checkpoint=ctx.raise_if_cancelled
    )
    return report.to_dict()


def train_media_tagger(
    dispatcher: Dispatcher,
    *,
    epochs: int | None = None,
    on_progress: Callable[[int, int], None] | None = None,
) -> TaskOutcome:
    """Run the ``train-tagger`` task and wait for it (``media-tags train``).

    ``on_progress(done, total)`` hears of each training step when the task runs
    in this process; a worker's progress is not reported.
    """
    if epochs is not None and epochs < 1:
        raise invalid("epochs", f"must be at least 1, not {epochs}")
    params = {} if epochs is None else {"epochs": epochs}
    with training_progress(on_progress):
        outcome = dispatcher.submit("train-tagger", params)
    if not outcome.finished:
        outcome = dispatcher.wait([outcome.task_id])[0]
    return outcome
