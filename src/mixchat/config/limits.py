"""Per-user limits an operator sets in ``[limits]``: what one user may hold of a shared model."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field


class UserLimits(BaseModel):
    """Applied to every user on every model; ``None`` means no limit.

    ``requests_in_flight`` counts a user's replies that are queued or streaming, across all
    their browser tabs (and API clients) in this process; ``max_tokens`` caps the reply length
    a user may ask for; ``tokens_per_day`` counts prompt and reply tokens since 00:00 UTC.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    requests_in_flight: int | None = Field(2, ge=1)
    max_tokens: int | None = Field(None, ge=1)
    tokens_per_day: int | None = Field(None, ge=1)
