"""The HTTP API's request and response bodies (pydantic): every field typed and bounded, unknown fields refused.

Bounds are part of the OpenAPI schema (``/openapi.json``), so a client (and the schemathesis fuzz test) sees exactly
what the server accepts; a body outside them is a 422 naming the field. What the schema cannot say (an unknown item
id, ``k`` above the model's K) is checked by the app and is a 422 too.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

__all__ = ["EventIn", "ExplorationIn", "RecommendIn", "ItemOut", "BundleOut", "RecommendOut", "BatchIn", "BatchOut",
           "FeedbackIn", "Ack", "NewItemIn", "ItemsIn", "ItemsOut", "ErrorOut", "LIMITS"]

LIMITS = {"events": 200, "exclude": 200, "text": 2000, "id": 64, "batch": 32, "items": 100, "k": 64,
          "money": 1e7, "time": 1e11, "min_price": 0.01}
"""The largest list sizes, string lengths and values a body may hold."""

Id = Field(min_length=1, max_length=LIMITS["id"], pattern=r"^[^\x00-\x1f]+$")


class _Body(BaseModel):
    model_config = ConfigDict(extra="forbid", allow_inf_nan=False, str_strip_whitespace=False)


class EventIn(_Body):
    """A user event: item id, kind, timestamp (seconds; events with equal timestamps are one shown bundle), and for a
    purchase optionally the price paid per item."""

    item_id: str = Id
    kind: Literal["view", "click", "purchase"]
    timestamp: float = Field(ge=0, le=LIMITS["time"])
    price: float | None = Field(default=None, gt=0, le=LIMITS["money"])


class ExplorationIn(_Body):
    """Exploration (bundlerl.serving.exploration): epsilon-greedy share or softmax temperature (not both), then a
    propensity floor (the uniform share mixed in); absent: the policy's own distribution."""

    epsilon: float | None = Field(default=None, ge=0, le=1)
    temperature: float | None = Field(default=None, gt=0, le=1000)
    floor: float | None = Field(default=None, ge=0, le=1)


class RecommendIn(_Body):
    """A recommendation request; the user's state comes only from it (any worker can answer)."""

    user_id: str | None = Field(default=None, min_length=1, max_length=128)
    profile_text: str | None = Field(default=None, max_length=LIMITS["text"])
    events: list[EventIn] = Field(default_factory=list, max_length=LIMITS["events"])
    k: int = Field(default=3, ge=1, le=LIMITS["k"])
    exclude: list[str] = Field(default_factory=list, max_length=LIMITS["exclude"])
    price_cap: float | None = Field(default=None, gt=0, le=LIMITS["money"])
    exploration: ExplorationIn = Field(default_factory=ExplorationIn)


class ItemOut(BaseModel):
    """An item as served: catalogue id, title, list price."""

    id: str
    title: str
    price: float


class BundleOut(BaseModel):
    """A ranked bundle: items, discounted bundle price, discount, the policy's probability (score), the probability
    under the exploring distribution (propensity), a reason and the scores behind it."""

    items: list[ItemOut]
    price: float
    discount: float
    score: float
    propensity: float
    reason: str
    scores: dict[str, float]
    candidate: int = Field(description="index of this bundle among the impression's K candidates (as logged)")


class RecommendOut(BaseModel):
    impression_id: str
    model_version: str
    bundles: list[BundleOut]


class BatchIn(_Body):
    requests: list[RecommendIn] = Field(min_length=1, max_length=LIMITS["batch"])


class BatchOut(BaseModel):
    results: list[RecommendOut]


class FeedbackIn(_Body):
    """The outcome of an impression: clicked, the item ids bought from its shown bundle, money paid."""

    impression_id: str = Field(min_length=1, max_length=100, pattern=r"^[0-9a-f-]+$")
    click: bool = False
    bought: list[str] = Field(default_factory=list, max_length=LIMITS["k"])
    revenue: float = Field(default=0.0, ge=0, le=LIMITS["money"])


class Ack(BaseModel):
    ok: bool
    detail: str = ""


class NewItemIn(_Body):
    """A cold-start item: new id, title, optional description, price, optional category name of the catalogue."""

    id: str = Id
    title: str = Field(min_length=1, max_length=300, pattern=r"\S")
    description: str = Field(default="", max_length=LIMITS["text"])
    price: float = Field(ge=LIMITS["min_price"], le=LIMITS["money"])
    category: str | None = Field(default=None, min_length=1, max_length=200)


class ItemsIn(_Body):
    items: list[NewItemIn] = Field(min_length=1, max_length=LIMITS["items"])


class ItemsOut(BaseModel):
    version: int
    added: list[str]


class ErrorOut(BaseModel):
    """Every 4xx body: ``detail`` says what is wrong (a string, or FastAPI's list of field errors)."""

    detail: Any
