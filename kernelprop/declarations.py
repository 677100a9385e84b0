"""Input domains an implementation may declare (SPEC section 6, attribute `domain`).

A domain restricts what the strategies draw for that implementation, so that a kernel which only
supports, say, head dims {512, 576} or finite sinks is verified where it claims to work, and a
property that cannot be exercised inside the domain is skipped with the reason. Every field None
means "no restriction". Cases are *fitted* into the domain (a deterministic map of the drawn case,
so hypothesis still shrinks), never filtered away.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Optional

from kernelprop.golden.domain import DomainValue, kinds, least, most, sizes
from kernelprop.golden.inputs import SINK_KINDS

SINK_VALUE_KINDS = {"neg_inf": lambda v: v == -math.inf, "pos_inf": lambda v: v == math.inf,
                    "zero": lambda v: v == 0.0, "large": lambda v: math.isfinite(v) and abs(v) > 30,
                    "finite": lambda v: math.isfinite(v) and abs(v) <= 30}


@dataclass(frozen=True)
class AttnDomain(DomainValue):
    """Sparse-attention inputs an implementation supports.

    sinks:              sink kinds it handles, among golden.inputs.SINK_KINDS ("finite": |sink|
                        <= 30, "zero", "large": |sink| > 30, "neg_inf", "pos_inf"); None: all.
    head_dims:          supported head dims D; None: any.
    max_heads:          most heads H; None: any.
    max_tokens_per_batch: most tokens per batch S (MTP depth); None: any.
    max_indices:        most index positions K per token; None: any.
    min_valid_keys:     every token has at least this many valid keys (serving engines never
                        send an empty decode row; SGLang and vLLM return NaN there); None: a token
                        may have none. P7 (empty rows) is then skipped with that reason, and every
                        drawn case is fitted so that no property sees a token below it.
    """

    sinks: Optional[tuple] = kinds(SINK_KINDS)
    head_dims: Optional[tuple] = sizes()
    max_heads: Optional[int] = most()
    max_tokens_per_batch: Optional[int] = most()
    max_indices: Optional[int] = most()
    min_valid_keys: Optional[int] = least()

    def __post_init__(self) -> None:
        super().__post_init__()
        if (self.min_valid_keys is not None and self.max_indices is not None
                and self.min_valid_keys > self.max_indices):
            raise ValueError(f"min_valid_keys={self.min_valid_keys} exceeds max_indices="
                             f"{self.max_indices}: no token could have that many valid keys")

    def empty_rows_reason(self) -> Optional[str]:
        """Why tokens without a valid key (P7) lie outside the domain, or None."""
        if self.min_valid_keys is None:
            return None
        return (f"the implementation declares {self.describe()}: every token has at least "
                f"{self.min_valid_keys} valid key(s), so tokens without one (P7) lie outside "
                f"its domain")

    def allows_sink(self, kind: str) -> bool:
        return self.sinks is None or kind in self.sinks

    def allows_sink_value(self, value: float) -> bool:
        """Whether one per-head sink value lies in a declared sink kind."""
        if self.sinks is None:
            return True
        return any(SINK_VALUE_KINDS[k](float(value)) for k in self.sinks)

    def fit(self, case):
        """The drawn AttnCase mapped into the domain (same seed; sizes clamped, head dim and sink
        kind replaced by an allowed one chosen from the case's own fields)."""
        changes = {}
        if self.head_dims is not None and case.head_dim not in self.head_dims:
            changes["head_dim"] = self.head_dims[case.head_dim % len(self.head_dims)]
        if self.max_heads is not None and case.heads > self.max_heads:
            changes["heads"] = self.max_heads
        if self.max_tokens_per_batch is not None and case.tokens_per_batch > self.max_tokens_per_batch:
            changes["tokens_per_batch"] = self.max_tokens_per_batch
        if self.sinks is not None and case.sink not in self.sinks:
            changes["sink"] = self.sinks[SINK_KINDS.index(case.sink) % len(self.sinks)]
        if self.max_indices is not None and case.num_indices > self.max_indices:
            window = min(case.window, self.max_indices)
            topk = min(case.topk, self.max_indices - window)
            changes.update(window=window, topk=topk,
                           extra=min(case.extra, self.max_indices - window - topk))
        if self.min_valid_keys is not None:
            changes.update(self._fit_valid_keys(case.replace(**changes)))
        return case.replace(**changes) if changes else case

    def _fit_valid_keys(self, case) -> dict:
        """Changes that give every token >= min_valid_keys valid keys: each token sees at least
        that many rows (seqused_kv >= S - 1 + n, the compressed cache long enough to hold what
        the window does not), K >= n index positions, and the generator repairs rows that pads,
        out-of-range values or duplicates left short (AttnCase.min_valid_keys)."""
        n = self.min_valid_keys
        S, W = case.tokens_per_batch, case.window
        min_used = max(case.min_used, S - 1 + n)
        changes = dict(min_valid_keys=n, min_used=min_used,
                       max_cmp_len=max(case.max_cmp_len, min_used - W))
        if case.num_indices < n:
            changes["topk"] = case.topk + n - case.num_indices
        return changes
