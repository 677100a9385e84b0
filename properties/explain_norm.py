"""What RMSNorm's reports know (kernelprop.core.causes.Explain, named by its registry record): the
recipes a kernel may compute instead of the declared one, and the pre-flight case.

Each candidate is a NormRecipe change; the cause holds when the recorded output passes P1 against
the golden of the changed recipe. A field the recipe type does not have is skipped.
"""
from __future__ import annotations

from kernelprop.core.causes import AlternativeRecipe, Cause, Explain
from kernelprop.golden.rmsnorm_inputs import NormCase


def _cause(changes: dict, statement: str, settle: str) -> AlternativeRecipe:
    text = ", ".join(f"{k}={v!r}" for k, v in changes.items())
    return AlternativeRecipe(Cause(id=f"rms_norm: recipe {text}", statement=statement,
                                   settle=settle), changes)


CAUSES = Explain(
    candidates=(
        _cause({"rounding": "rtz"},
               "every mismatch is the truncation (rtz) of the golden's fp32 value",
               "the backend truncates its fp32 -> bf16 stores (the Triton interpreter does, SPEC "
               "section 5: run under the faithful interpreter), or declare "
               "`NormRecipe(rounding=\"rtz\")` if the kernel truncates by design"),
        _cause({"rounding": "rna"},
               "every mismatch is the golden's fp32 value rounded to nearest, ties away from zero",
               "declare `NormRecipe(rounding=\"rna\")`"),
        _cause({"round_before_weight": True},
               "the output equals the golden with x * inv rounded to the output dtype before the "
               "weight (HF LlamaRMSNorm, Liger `llama` mode)",
               "declare `NormRecipe(round_before_weight=True)`"),
        _cause({"weight_offset": 1.0},
               "the output equals the golden with (1 + w) as the weight (Gemma, Liger offset 1)",
               "declare `NormRecipe(weight_offset=1.0)`"),
        _cause({"out_dtype": "fp32"},
               "the output equals the golden's fp32 value, never rounded to bf16",
               "declare `NormRecipe(out_dtype=\"fp32\")`"),
    ),
    with_recipe=lambda params, recipe: {**params, "recipe": recipe},
    preflight_case=lambda device: NormCase(seed=0, rows=1, dim=16, device=device),
)
