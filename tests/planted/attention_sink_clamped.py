"""Planted bug: impls/flat_slot_reference.py with an overflow "guard" on the sink: the sink enters
the logsumexp as min(sink, lse_keys + 88), so exp(sink - M) never overflows. A +inf sink then gives
a tiny non-zero o (about e^-88 of the true o without a sink) instead of exact zeros; finite sinks
are unaffected wherever the golden's own fp32 denominator does not overflow. Declares the
reference's (truthful) recipe."""
import torch

from kernelprop.impls import flat_slot_reference as _ref


def _guarded_fold(lse_keys: torch.Tensor, sink: torch.Tensor) -> torch.Tensor:
    """The bug: the sink is capped at lse_keys + 88 before it is folded in."""
    return torch.logaddexp(lse_keys, torch.minimum(sink, torch.where(torch.isfinite(lse_keys),
                                                                     lse_keys, 0.0) + 88.0))


sparse_decode_attention = _ref.flat_slot_adapter(fold=_guarded_fold)
