"""The planted-bug catalogue: implementations with one realistic kernel bug each, and the controls.
Here: the shared `Mutant` / `Control` types and RMSNorm's entries; every other op's entries are in
its own module, named by its registry record's `catalogue` (e.g. impls/mutants/attention.py).

Each `Mutant` names a module-level callable (`--impl KIND=TARGET`), the bug in one line and the
SPEC section 4 properties expected to catch it. `python -m kernelprop mutants` runs the suite
against every entry and prints the kill matrix (docs/mutants.md). Controls are correct
implementations: every property must pass on them (a failure is a false alarm of the suite).

`expected_killers=()` marks a mutant that no sound property can tell from a correct kernel
(`equivalent` says why); it is reported but its survival does not fail the run.
"""
from __future__ import annotations

from dataclasses import dataclass

NORM = "impls/mutants/rmsnorm.py"


@dataclass(frozen=True)
class Mutant:
    name: str
    kind: str                      # the op's kind (the --impl KIND)
    target: str                    # PATH:CALLABLE, PATH relative to the repository root
    description: str               # the bug, one line
    expected_killers: tuple = ()   # SPEC P ids expected to fail on it
    equivalent: str = ""           # why no sound property can catch it (expected_killers empty)


@dataclass(frozen=True)
class Control:
    name: str
    kind: str
    target: str
    description: str
    exempt: tuple = ()             # ((P id, why it may fail there), ...): known, not a false alarm


def _norm(fn, description, killers):
    return Mutant(fn, "rms_norm", f"{NORM}:{fn}", description, killers)


MUTANTS = [
    # RMSNorm
    _norm("rsqrt_12bit", "INV is a hardware rsqrt with 12 correct bits", ("P1", "P12")),
    _norm("rsqrt_10bit", "INV is a hardware rsqrt with 10 correct bits", ("P1", "P12")),
    _norm("eps_after_sqrt", "inv = 1 / (sqrt(ss / D) + eps)", ("P1", "P12")),
    _norm("eps_dropped", "eps left out: all-zero rows give 0 * inf = NaN", ("P1",)),
    _norm("eps_in_sum", "inv = INV((ss + eps) / D): eps added before the mean", ("P1",)),
    _norm("mean_padded", "mean divides by the next power of two of D", ("P1",)),
    _norm("ss_bf16_acc", "sum of squares accumulated in bf16", ("P1", "P12")),
    _norm("fp32_input_as_bf16", "fp32 x rounded to bf16 on load", ("P1",)),
    _norm("bf16_before_weight", "x * inv rounded to bf16 before the weight (Llama casting)",
          ("P1",)),
    _norm("out_rtz", "output truncated to bf16 instead of recipe.rounding", ("P1",)),
    _norm("out_via_fp16", "output rounded fp32 -> fp16 -> bf16 (double rounding)", ("P1",)),
    _norm("norm_recipe_ignored", "recipe keyword accepted but the default recipe always used",
          ("P1",)),
    _norm("subnormals_flushed", "fp32 subnormal squares flushed to zero (eps = 0, tiny data: "
          "y = inf)", ("P1",)),
    # the recipes of real models (SPEC 3), each declared as shipped (no recipe keyword)
    _norm("gemma_no_offset", "declares Gemma's weight_offset 1 but multiplies by w, not 1 + w",
          ("P1", "P12")),
    _norm("llama_no_cast", "declares round_before_weight (Llama) but skips the cast of x * inv",
          ("P1", "P12")),
    _norm("llama_cast_rtz", "round_before_weight's cast of x * inv truncates (rtz), recipe rne",
          ("P1", "P12")),
    _norm("input_dtype_always_bf16", "declares out_dtype 'input' but writes bf16 for fp32 x",
          ("P1", "P12")),
    _norm("narrow_in_fp32", "declares compute_dtype 'input' but computes a bf16 x in fp32",
          ("P1", "P12")),
    _norm("promote_fp32_sum", "declares compute_dtype 'promote' (bf16 tl.sum of the squares) but "
          "sums the bf16 squares in fp32", ("P1",)),
    _norm("nan_swallowed_fmax", "v guarded with fmax(v, FLT_MIN): a NaN sum of squares becomes "
          "FLT_MIN, so a row with a NaN gives finite outputs beside it", ("P9",)),
]

NO_ARG_CHECKS = ("impls/torch_reference.py is a numerics reference without the wrappers' argument "
                 "checks, so P13 (clear errors on bad input) rightly fails on it")

CONTROLS = [
    Control("bundled_rms_norm", "rms_norm", "kernelprop.kernels:rms_norm", "the bundled Triton kernel"),
    Control("torch_reference_rms_norm", "rms_norm", "impls/torch_reference.py:rms_norm",
            "independent torch implementation", exempt=(("P13", NO_ARG_CHECKS),)),
    Control("catalogue_base_rms_norm", "rms_norm", f"{NORM}:reference",
            "the mutants' common base, no bug"),
    Control("reverse_chunks", "rms_norm", f"{NORM}:reverse_chunks",
            "benign: sum-of-squares chunks added right to left (within fp32 bounds)"),
    Control("gemma_reference", "rms_norm", f"{NORM}:gemma_reference",
            "the base declaring Gemma's recipe (weight_offset 1, out_dtype input), no bug"),
    Control("llama_reference", "rms_norm", f"{NORM}:llama_reference",
            "the base declaring Llama's recipe (round_before_weight, out_dtype input), no bug"),
    Control("input_dtype_reference", "rms_norm", f"{NORM}:input_dtype_reference",
            "the base declaring out_dtype input, no bug"),
    Control("narrow_reference", "rms_norm", f"{NORM}:narrow_reference",
            "the base declaring compute_dtype input, no bug"),
    Control("promote_reference", "rms_norm", f"{NORM}:promote_reference",
            "the base declaring compute_dtype promote (Liger none mode), no bug"),
    Control("hf_llama_rms_norm", "rms_norm", "impls/hf_norms.py:llama_rms_norm",
            "Hugging Face LlamaRMSNorm's formula in torch, its declared recipe"),
    Control("hf_gemma_rms_norm", "rms_norm", "impls/hf_norms.py:gemma_rms_norm",
            "Hugging Face GemmaRMSNorm's formula in torch, its declared recipe"),
]


def every_entry() -> list:
    """The mutants and controls here, then every registered op's own catalogue's (Op.catalogue)."""
    import importlib

    from kernelprop.registry import OPS

    entries = MUTANTS + CONTROLS
    for o in OPS:
        if o.catalogue:
            module = importlib.import_module(o.catalogue)
            entries = entries + module.MUTANTS + module.CONTROLS
    return entries


def by_name(name: str):
    """The mutant or control called `name`, here or in an op's catalogue (KeyError naming the
    known ones otherwise)."""
    entries = every_entry()
    for entry in entries:
        if entry.name == name:
            return entry
    raise KeyError(f"no mutant or control {name!r}; known: {[e.name for e in entries]}")
