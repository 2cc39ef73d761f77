"""Did an edit land? One word per edit from the evaluate stage's own numbers, with the numbers that decided it.

- "applied": the edited components have the asked colour on at least `applied_share` of their pixels (the
  merged asset's evaluation renders) and the kept components are at least `kept_psnr` dB from the source's;
- "partly applied": some of the asked colour (at least `partly_share`), or the colour but kept parts changed;
- "not applied": less than `partly_share` of the asked colour;
- "noise: random model": a random, untrained model (the `tiny` preset) made it: its output means nothing;
- "not measured": the edit asks for no colour the evaluation can count (a shape or a material), and nothing
  else here says whether it landed.
The thresholds are settings (`evaluate.verdict`); the benchmark's own success rule against the exact answer is
stricter (`ground_truth.SuccessThresholds`: 0.5 of the part and 35 dB from the answer).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

VerdictLabel = Literal["applied", "partly applied", "not applied", "noise: random model", "not measured"]
VERDICTS: tuple[VerdictLabel, ...] = ("applied", "partly applied", "not applied", "noise: random model", "not measured")
UNAPPLIED: frozenset[str] = frozenset({"partly applied", "not applied", "noise: random model"})  # --fail-on-unapplied


class VerdictConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    applied_share: float = Field(0.5, gt=0.0, le=1.0)  # of the edited components' pixels in the asked colour
    partly_share: float = Field(0.15, ge=0.0, le=1.0)  # below this: not applied
    kept_psnr: float = Field(20.0, ge=0.0)  # dB, kept components against the source (render noise is ~25-30 dB)


@dataclass(frozen=True)
class Verdict:
    label: VerdictLabel
    reason: str  # the numbers that decided it, in words

    def text(self) -> str:
        return f"{self.label} ({self.reason})"


def edit_verdict(metrics: Mapping[str, object], config: VerdictConfig | None = None, *, random_model: bool = False) -> Verdict:
    """The verdict on one edit from its metrics (`edited_colour_share`, `edit_colour`, `preserved_psnr`)."""
    config = config or VerdictConfig()
    if random_model:
        return Verdict("noise: random model", "a random, untrained model drew it: the tiny preset")
    share = _number(metrics.get("edited_colour_share"))
    kept = _number(metrics.get("preserved_psnr"))
    colour = metrics.get("edit_colour") or "the asked colour"
    kept_text = "" if kept is None else f", kept parts {kept:.1f} dB from the source"
    if share is None:
        return Verdict("not measured", "the edit asks for no colour the evaluation counts" + kept_text)
    said = f"{share:.0%} of the edited parts in {colour}{kept_text}"
    kept_ok = kept is None or kept >= config.kept_psnr
    if share >= config.applied_share and kept_ok:
        return Verdict("applied", said)
    if share >= config.partly_share:
        why = "" if kept_ok else f"; kept parts below {config.kept_psnr:.0f} dB"
        return Verdict("partly applied", said + why)
    return Verdict("not applied", said)


def _number(value: object) -> float | None:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    return float(value)
