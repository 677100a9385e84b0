"""What sparse attention's reports know (kernelprop.core.causes.Explain, named by its registry record):
the causes a failing example can prove, and the pre-flight case.

- every non-finite output is on a token with no valid key (SPEC section 2: such a token outputs
  exact zeros; a serving engine never launches one, every decode token sees at least itself)
- the output equals the golden of another recipe: P rounded toward zero or ties away, P kept in
  fp32, L from the unrounded exp, compacted tiling, no tiling (each an AttnRecipe field)

and its report hints (`hints`): o non-zero on a head whose sink is +inf; every actual value on the
bf16 grid while the recipe under test says out_dtype "fp32".
"""
from __future__ import annotations

import math

import torch

from kernelprop.core.causes import AlternativeRecipe, Cause, EvidenceCause, Explain, Failing
from kernelprop.golden.attention import valid_index_mask
from kernelprop.golden.attention_inputs import AttnCase, AttnInputs
from kernelprop.golden.output_rounding import output_numerics


def keyless_tokens(x: AttnInputs) -> torch.Tensor:
    """[T] bool: the tokens with no valid key."""
    valid = valid_index_mask(x.sparse_indices, x.seqused_kv, window=x.window,
                             tokens_per_batch=x.tokens_per_batch)
    return valid.sum(1) == 0


def nonfinite_only_on_keyless_tokens(f: Failing) -> bool:
    """Some compared value is non-finite, every non-finite one and every failing element lies on
    a token that has no valid key in the example's inputs (o is [T, H, D])."""
    a, e = f.outcome.actual, f.outcome.expected
    if a.dim() != 3 or tuple(e.shape) != tuple(a.shape):
        return False
    nonfinite = ~torch.isfinite(a.double()) | ~torch.isfinite(e.double())
    if not bool(nonfinite.any()):
        return False
    keyless = torch.zeros(a.shape[0], dtype=torch.bool)
    for x in f.evidence.inputs.values():
        if isinstance(x, AttnInputs) and x.sparse_indices.shape[0] == a.shape[0]:
            keyless |= keyless_tokens(x).cpu()
    on_keyless = keyless[:, None, None].expand(a.shape).to(a.device)
    return bool(on_keyless.any()) and not bool((nonfinite & ~on_keyless).any()) \
        and not bool((f.failing & ~on_keyless).any())


NAN_ON_KEYLESS = Cause(
    id="attention: non-finite output on tokens with no valid key",
    statement="every non-finite output is on a token with no valid key (0/0 of an empty softmax)",
    settle="if the kernel is for serving engines (every decode token sees at least itself), "
           "declare `AttnDomain(min_valid_keys=1)`; otherwise fix the empty-row guard: SPEC "
           "section 2 says a token with no valid key outputs exact zeros")


def _recipe_cause(field: str, value, what: str) -> AlternativeRecipe:
    return AlternativeRecipe(
        Cause(id=f"attention: recipe {field}={value!r}",
              statement=f"the output equals the golden with {what} (AttnRecipe {field}={value!r}), "
                        f"not the declared recipe",
              settle=f"declare `AttnRecipe({field}={value!r})` if that is what the kernel computes"
                     + (", or run where the backend rounds to nearest (the Triton interpreter's "
                        "fp32 -> bf16 conversions truncate, SPEC section 5)"
                        if value == "rtz" else "")),
        {field: value})


BF16_GRID = ("every actual value lies on the bf16 grid: does the kernel round its output? "
             "declare out_dtype (AttnRecipe(out_dtype=\"bf16\"))")
POS_INF_SINK = ("o is non-zero on a head whose sink is +inf: a +inf sink must give exact zeros "
                "(does the kernel clamp the sink or drop it from the denominator?)")


def pos_inf_sink_nonzero(outcome, inputs: dict) -> bool:
    """o [T, H, D] is non-zero (and not NaN) somewhere on a head whose sink is +inf."""
    x = inputs.get("inputs")
    if not isinstance(x, AttnInputs) or outcome.actual.dim() != 3:
        return False
    sink = x.attn_sink.detach().cpu()
    a = outcome.actual.detach().cpu()
    if a.shape[1] != sink.shape[0]:
        return False
    pos = sink == math.inf
    return bool(pos.any()) and bool(((a[:, pos] != 0) & ~torch.isnan(a[:, pos])).any())


def attention_hints(property_id: str, outcome, inputs: dict, recipe) -> list[str]:
    """POS_INF_SINK, then BF16_GRID (a bf16 output, or fp32 values all on the bf16 grid, while
    the recipe under test says out_dtype "fp32")."""
    hints = []
    if pos_inf_sink_nonzero(outcome, inputs):
        hints.append(POS_INF_SINK)
    if recipe is not None and output_numerics(recipe.out_dtype).rounded_beyond_declaration(
            outcome.actual, outcome.expected):
        hints.append(BF16_GRID)
    return hints


CAUSES = Explain(
    candidates=(
        EvidenceCause(NAN_ON_KEYLESS, nonfinite_only_on_keyless_tokens),
        _recipe_cause("rounding", "rtz", "every P rounded toward zero (the truncation of its fp32 "
                                         "value)"),
        _recipe_cause("rounding", "rna", "every P rounded to nearest, ties away from zero"),
        _recipe_cause("p_dtype", "fp32", "P kept in fp32 before P.V"),
        _recipe_cause("l_from", "unrounded", "L summing the unrounded fp32 exp"),
        _recipe_cause("tiling", "compacted", "tiles over the compacted valid list"),
        _recipe_cause("tile", None, "one untiled softmax"),
    ),
    with_recipe=lambda params, recipe: {**params, "recipe": recipe},
    preflight_case=lambda device: AttnCase(seed=0, batches=1, tokens_per_batch=1, heads=2,
                                           head_dim=16, page_size=8, window=8, topk=8,
                                           max_cmp_len=16, min_used=8, device=device),
    hints=attention_hints,
)
