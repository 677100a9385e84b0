"""Replays of the RMSNorm properties that vary how the kernel is launched, not the data: P9 batch
invariance (a row's output does not depend on how many rows share the call), P11 reruns (bitwise
equal, inputs left as they were), P1 under each declared autotune config. Bounds:
docs/bounds-rmsnorm.md#launch.
"""
from __future__ import annotations

from kernelprop.properties.replays_norm import recipe_of, p1
from kernelprop.core.verdict import Outcome

P9B_DOC = ("P9 batch invariance: the m rows of a small batch bitwise equal to the same rows "
           "inside calls on n rows (each n of batch_rows); no bound: the same inputs "
           "(docs/bounds-rmsnorm.md#launch)")
P11_DOC = ("P11 reruns: a second call on the same tensors is bitwise the first, and the call leaves "
           "x and weight bitwise as they were (docs/bounds-rmsnorm.md#launch)")


def p9_batch_invariance(inputs: dict, impl, params: dict) -> Outcome:
    """Rows [start, start + m) alone (inputs["part"]) vs inside the first n rows of
    inputs["inputs"] for each n of params["counts"] (one comparison, batches concatenated)."""
    import torch

    whole, part = inputs["inputs"], inputs["part"]
    recipe = recipe_of(params)
    start, m = int(params["start"]), part.x.shape[0]
    counts = [int(n) for n in params["counts"]]
    alone = part.call(impl, recipe=recipe)
    inside = [whole.replace(x=whole.x[:n]).call(impl, recipe=recipe)[start:start + m] for n in counts]
    return Outcome(actual=torch.cat(inside), expected=torch.cat([alone] * len(counts)), bound=None,
                   bound_doc=P9B_DOC, metrics={"batch_rows": counts, "part_rows": m, "start": start})


def p11_reruns(inputs: dict, impl, params: dict) -> Outcome:
    """Two calls on the same tensors: the second output and the inputs after both calls against
    the first output and copies of the inputs taken before (flattened into one comparison)."""
    import torch

    x = inputs["inputs"]
    recipe = recipe_of(params)
    before = [t.clone() for t in (x.x, x.weight) if t is not None]
    first = x.call(impl, recipe=recipe)
    second = x.call(impl, recipe=recipe)
    after = [t for t in (x.x, x.weight) if t is not None]

    def flat(ts):
        return torch.cat([t.detach().float().reshape(-1).cpu() for t in ts])

    return Outcome(actual=flat([second] + after), expected=flat([first] + before), bound=None,
                   bound_doc=P11_DOC, metrics={"output_elements": int(first.numel())})


def p1_autotune_config(inputs: dict, impl, params: dict) -> Outcome:
    """P1 with declared autotune config params["autotune_config"] of every autotuned kernel
    (kernelprop.faithful; the cpu backend)."""
    from kernelprop.faithful import autotune_config

    with autotune_config(int(params["autotune_config"])):
        return p1(inputs, impl, params)


F4B_DOC = ("F4 batch invariance: y and residual_out of the m rows of a small batch bitwise equal "
           "to the same rows inside calls on n rows (each n of batch_rows); no bound: the same "
           "inputs (docs/bounds-rmsnorm.md#launch)")


def f4_batch_invariance(inputs: dict, impl, params: dict) -> Outcome:
    """fused_add_rms_norm: (y, z) of the first m rows alone vs inside the first n rows of
    inputs["inputs"] for each n of params["counts"] (either calling convention)."""
    import torch

    from kernelprop.properties.replays_fused import broken_outcome, outputs

    whole = inputs["inputs"]
    recipe = recipe_of(params)
    m = int(params["part_rows"])
    counts = [int(n) for n in params["counts"]]

    def rows(n):
        out = outputs(whole.replace(x=whole.x[:n], residual=whole.residual[:n]), impl, recipe)
        return out if isinstance(out, str) else torch.cat([t[:m].float().reshape(-1) for t in out])

    alone = rows(m)
    inside = [rows(n) for n in counts]
    broken = next((o for o in [alone] + inside if isinstance(o, str)), None)
    if broken is not None:
        return broken_outcome(broken, F4B_DOC)
    return Outcome(actual=torch.cat(inside), expected=torch.cat([alone] * len(counts)), bound=None,
                   bound_doc=F4B_DOC, metrics={"batch_rows": counts, "part_rows": m})
