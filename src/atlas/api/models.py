"""The request bodies of the API, validated once at the edge (pydantic).

The limits are those of the CLI and the services (tag counts, text lengths,
ids that fit the database); the services check again, so a request that
slips past a model still fails with one clear error and writes nothing.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from atlas.db import MAX_ID
from atlas.feedback.tracking import MAX_TAG_STRING
from atlas.media.tags import MAX_TAGS

__all__ = [
    "ERROR_RESPONSES",
    "ApiError",
    "AutolearnRun",
    "CorrectRequest",
    "EditRequest",
    "EnqueueRequest",
    "Id",
    "LoopRequest",
    "MoveRequest",
    "RecommendationApply",
    "RecommendationDismiss",
    "RuleSwitch",
    "TagsRequest",
]

#: An id the database can hold.
Id = Annotated[int, Field(ge=1, le=MAX_ID)]
_Tag = Annotated[str, Field(min_length=1, max_length=200)]


class ApiError(BaseModel):
    """Every failure: one line that says what went wrong, and the HTTP status."""

    error: str
    status: int


#: The failures every API route may answer with, for the OpenAPI document.
ERROR_RESPONSES: dict[int | str, dict[str, Any]] = {
    code: {"model": ApiError, "description": description}
    for code, description in (
        (401, "A token is required and was not given (or is wrong)"),
        (403, "Cross-site request, or a page request without its CSRF token"),
        (404, "No such item, rule, application or task"),
        (409, "The request clashes with the current state"),
        (413, "The body is too large"),
        (415, "The body is not JSON"),
        (422, "The request is invalid"),
        (503, "The database or the vector store is unavailable"),
    )
}


class _Body(BaseModel):
    model_config = ConfigDict(extra="forbid", allow_inf_nan=False, str_max_length=100_000)

    @field_validator("*", mode="after")
    @classmethod
    def _no_nul(cls, value: Any) -> Any:
        texts = value if isinstance(value, list) else [value]
        if any(isinstance(text, str) and "\x00" in text for text in texts):
            raise ValueError("contains a NUL character")
        return value


class CorrectRequest(_Body):
    """The user's corrections of one item (as ``track-tag-edits``): at least one field."""

    tags: list[_Tag] | Annotated[str, Field(max_length=MAX_TAG_STRING)] | None = Field(
        default=None,
        description="The corrected full tag set (a list, or one comma-separated text).",
    )
    genre: Annotated[str, Field(max_length=100)] | None = None
    rating: Annotated[float, Field(ge=0, le=5, multiple_of=0.5)] | None = None
    confidence: Annotated[float, Field(ge=0, le=1)] = 1.0

    @field_validator("tags")
    @classmethod
    def _few_tags(cls, value: Any) -> Any:
        if isinstance(value, list) and len(value) > MAX_TAGS:
            raise ValueError(f"names {len(value)} tags; the limit is {MAX_TAGS}")
        return value


class EditRequest(_Body):
    """New descriptive fields of one item (as ``media edit``)."""

    title: Annotated[str, Field(max_length=1000)] | None = None
    genre: Annotated[str, Field(max_length=100)] | None = None
    description: Annotated[str, Field(max_length=100_000)] | None = None
    artist: Annotated[str, Field(max_length=1000)] | None = None
    year: Annotated[int, Field(ge=0, le=9999)] | None = None


class MoveRequest(_Body):
    """Where to move an item's file: a folder in the library, or a new file path."""

    destination: Annotated[str, Field(min_length=1, max_length=4095)]


class TagsRequest(_Body):
    """Tags to add to or remove from one item."""

    tags: Annotated[list[_Tag], Field(min_length=1, max_length=MAX_TAGS)]
    # None: the vocabulary's kind, or the library's, else topic (as the CLI does).
    kind: Literal["genre", "topic", "keyword"] | None = None


class RuleSwitch(_Body):
    reason: Annotated[str, Field(max_length=1000)] | None = None


class RecommendationApply(_Body):
    dry_run: bool = False


class RecommendationDismiss(_Body):
    reason: Annotated[str, Field(max_length=1000)] | None = None


class AutolearnRun(_Body):
    """One autolearn cycle; ``auto`` also applies the safe recommendations."""

    auto: bool = False


class LoopRequest(_Body):
    """One run of the feedback loop (as ``run-feedback-loop``)."""

    analyze_only: bool = False
    apply_rules: bool = False
    dry_run: bool = False
    min_frequency: Annotated[int, Field(ge=1, le=MAX_ID)] | None = None
    move_files: bool = False


class EnqueueRequest(_Body):
    """A task to start: ingest (a path), transcribe, tag or embed (media ids), cluster."""

    task_type: Literal["ingest", "transcribe", "tag", "embed", "cluster"]
    path: Annotated[str, Field(min_length=1, max_length=4095)] | None = None
    media_ids: Annotated[list[Id], Field(min_length=1, max_length=10_000)] | None = None
    force: bool | None = None
    chain: bool | None = None
    k: Annotated[int, Field(ge=2, le=1000)] | None = None

    def params(self) -> dict[str, Any]:
        values = self.model_dump(exclude={"task_type"}, exclude_none=True)
        if self.task_type == "cluster":
            values.setdefault("auto", "k" not in values)
        return values
