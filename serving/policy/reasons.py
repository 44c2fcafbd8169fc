"""Why each served video is there, as one small vocabulary shared by the API, the logs and the UI.

The policy picks the most specific reason that is true, in this order: exploring (the slot was an
exploration draw, whatever else holds), new from a creator you follow (the freshness boost put it
there), because you watched X (an item-to-item source nominated it from watched video X), trending,
and otherwise recommended for you.
"""

from __future__ import annotations

from enum import StrEnum


class Reason(StrEnum):
    EXPLORING = "exploring"
    NEW_FROM_SUBSCRIPTION = "new_from_subscription"
    BECAUSE_YOU_WATCHED = "because_you_watched"
    TRENDING = "trending"
    RECOMMENDED = "recommended_for_you"


REASON_TEXT = {
    Reason.EXPLORING: "Something new to explore",
    Reason.NEW_FROM_SUBSCRIPTION: "New from a creator you follow",
    Reason.BECAUSE_YOU_WATCHED: "Because you watched {watched}",
    Reason.TRENDING: "Trending",
    Reason.RECOMMENDED: "Recommended for you",
}


def reason_text(reason: Reason | str, watched: str | int | None = None) -> str:
    """The line a UI shows; `watched` names the video behind "because you watched" (its title, or id)."""
    reason = Reason(reason)
    if reason is Reason.BECAUSE_YOU_WATCHED:
        if watched is None:
            raise ValueError("the 'because_you_watched' reason needs the watched video's title or id")
        return REASON_TEXT[reason].format(watched=watched)
    return REASON_TEXT[reason]


def candidate_reason(
    source: str,
    because_video_id: int,
    fresh_from_subscription: bool,
    item_to_item_sources: tuple[str, ...],
    trending_sources: tuple[str, ...],
) -> Reason:
    """The reason of a video the policy chose itself (not an exploration draw)."""
    if fresh_from_subscription:
        return Reason.NEW_FROM_SUBSCRIPTION
    if source in item_to_item_sources and because_video_id >= 0:
        return Reason.BECAUSE_YOU_WATCHED
    if source in trending_sources:
        return Reason.TRENDING
    return Reason.RECOMMENDED
