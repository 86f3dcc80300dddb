"""Storing a prediction: learned rules act, stale automatic tags go, in one transaction.

For one item, in one transaction:

1. :func:`atlas.feedback.apply_rules` gets the new prediction set: it drops tags
   the user removed from this item before (rejections) and tags the user or a
   rule already set, lets the enabled tag rules act (recording each application),
   and returns the tags to store: predictions as ``auto``, rule-made ones as ``rule``;
2. the item's automatic tags that are not among them are deleted: retagging
   replaces stale automatic tags, and never touches ``user`` or ``rule`` tags;
3. the returned tags are upserted (a weaker source never overwrites a stronger one);
4. ``media_tag_inputs`` records the input hash the item was tagged from, and the
   tags a learned cut-off held back (the user's next full review judges them).

A crash before the commit leaves the item as it was; tagging it again repairs.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import Engine, select

from atlas.db import database_errors, utcnow
from atlas.db.tables import media, media_tags
from atlas.errors import NotFound
from atlas.feedback import RuleIndex, apply_rules
from atlas.media.tags import Tag, remove_tags, upsert_tags
from atlas.tagging.inputs import mark_tagged
from atlas.tagging.tagger import ItemPrediction

__all__ = ["StoredTags", "store_prediction"]


@dataclass
class StoredTags:
    media_id: int
    #: What the tagger stored: predictions (``auto``) and rule-made tags (``rule``).
    tags: list[Tag] = field(default_factory=list)
    #: Automatic tags of an earlier tagging that were replaced.
    removed: list[str] = field(default_factory=list)
    #: Rule applications recorded.
    applications: int = 0

    def to_dict(self) -> dict[str, Any]:
        return {
            "tags": [tag.__dict__ for tag in self.tags],
            "removed": self.removed,
            "rule_applications": self.applications,
        }


def store_prediction(
    engine: Engine, prediction: ItemPrediction, *, rules: RuleIndex, model_id: str
) -> StoredTags:
    """Store one item's prediction (see the module docstring); raises ``NotFound``."""
    media_id = prediction.media_id
    now = utcnow()
    with database_errors(engine), engine.begin() as connection:
        found = connection.scalar(
            select(media.c.id).where(media.c.id == media_id).with_for_update()
        )
        if found is None:
            raise NotFound(f"no media with id {media_id} (deleted while it was being tagged)")
        result = apply_rules(
            connection, media_id, [p.as_tag() for p in prediction.tags], rules=rules, now=now
        )
        keep = {tag.norm for tag in result.tags}
        old = connection.execute(
            select(media_tags.c.tag, media_tags.c.tag_norm).where(
                media_tags.c.media_id == media_id, media_tags.c.source == "auto"
            )
        ).all()
        stale = [row for row in old if row.tag_norm not in keep]
        remove_tags(connection, media_id, [row.tag_norm for row in stale], sources=["auto"])
        upsert_tags(connection, media_id, result.tags)
        mark_tagged(
            connection,
            media_id,
            model_id=model_id,
            text_hash=prediction.text_hash,
            vector=prediction.vector,
            hash_of_input=prediction.input_hash,
            now=now,
            withheld=[
                {"tag": p.tag, "norm": p.norm, "kind": p.kind, "confidence": p.confidence}
                for p in prediction.withheld
            ],
        )
    return StoredTags(
        media_id=media_id,
        tags=list(result.tags),
        removed=[row.tag for row in stale],
        applications=len(result.applications),
    )
