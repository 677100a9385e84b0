"""The planted-bug catalogue: implementations with one realistic kernel bug each, and the controls.

Each `Mutant` names a module-level callable (`--impl KIND=TARGET`), the bug in one line and the
SPEC section 4 properties expected to catch it. `python -m kernelprop mutants` runs the suite
against every entry and prints the kill matrix (docs/mutants.md). Controls are correct
implementations: every property must pass on them (a failure is a false alarm of the suite).

`expected_killers=()` marks a mutant that no sound property can tell from a correct kernel
(`equivalent` says why); it is reported but its survival does not fail the run.
"""
from __future__ import annotations

from dataclasses import dataclass

ATTN = "impls/mutants/attention.py"


@dataclass(frozen=True)
class Mutant:
    name: str
    kind: str                      # the --impl KIND (an op's registry kind)
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


def _attn(fn, description, killers, equivalent=""):
    return Mutant(fn, "sparse_attention", f"{ATTN}:{fn}", description, killers, equivalent)


MUTANTS = [
    # rounding and precision of the softmax
    _attn("p_rtz", "P rounded toward zero whatever recipe.rounding says", ("P1", "P2")),
    _attn("p_rna", "P rounded ties-away where the recipe asks nearest-even", (),
          equivalent="e lands exactly on a bf16 tie only by fp32 exp error, and any correct exp "
                     "may round it either way, so P1's sound bound must allow both candidates"),
    _attn("p_fp32", "P kept in fp32 when recipe.p_dtype is bf16", ("P1",)),
    _attn("l_unrounded", "L sums the fp32 exp when recipe.l_from is rounded", ("P1",)),
    _attn("scores_bf16", "scores q.k rounded to bf16 before the softmax (bf16 dot output)",
          ("P1", "P2")),
    _attn("scale_bf16", "softmax_scale cast to bf16", ("P1", "P2")),
    _attn("pv_bf16_acc", "P.V accumulated in bf16", ("P1", "P2")),
    _attn("recipe_ignored", "recipe keyword accepted but the default recipe always used",
          ("P1", "P2")),
    # sink
    _attn("sink_in_max", "sink logit included in every tile's max", ("P1", "P6")),
    _attn("sink_ignored", "sink left out of the denominator", ("P1", "P6")),
    _attn("sink_no_max", "denominator adds exp(sink), not exp(sink - M)", ("P1", "P6")),
    # visible window, indices, pages
    _attn("visible_off_by_one", "used = seqused - S + s (the + 1 dropped)", ("P1",)),
    _attn("window_le", "window index valid for r <= win_valid, not r < win_valid",
          ("P1", "P10")),
    _attn("mtp_offset_ignored", "every token sees seqused rows (position s ignored)", ("P1",)),
    _attn("pads_row0", "-1 pads read as window row 0", ("P1", "P5")),
    _attn("pads_wrap", "negative indices wrap to the window's last rows (Python indexing)",
          ("P1", "P5")),
    _attn("dups_once", "a duplicated index counted once", ("P1", "P5")),
    _attn("cmp_plus_one", "compressed slot r - W + 1", ("P1", "P10")),
    _attn("cmp_no_offset", "compressed slot r (the - W dropped)", ("P1",)),
    _attn("cmp_ori_table", "compressed rows looked up through ori_block_table", ("P1", "P8")),
    _attn("page_table_ignored", "page = batch * blocks + r // BS (identity page table assumed)",
          ("P1", "P8")),
    _attn("unmasked_rows", "rows of invalid lanes loaded unmasked, P masked after: 0 * NaN leaks",
          ("P1", "P10")),
    _attn("batch_modulo", "token's batch b = t % B instead of t // S", ("P1",)),
    # tiles and merges
    _attn("partial_tile_dropped", "last tile skipped when K % tile != 0", ("P1", "P3")),
    _attn("empty_tile_nan", "all-masked tile not skipped: exp(-inf - -inf) = NaN",
          ("P1", "P5", "P7")),
    _attn("empty_row_unguarded", "no guard for rows without valid keys: NaN when sink is -inf",
          ("P7",)),
    _attn("merge_swapped", "merge factors a and b swapped", ("P1", "P3")),
    _attn("o_not_rescaled", "O not multiplied by a when the running max grows", ("P1", "P3")),
    _attn("merge_order_random", "tiles merged in a run-dependent order (split-K with atomics)",
          ("P11",)),
    _attn("empty_rows_unwritten", "tokens without a valid key never stored (NaN from torch.empty)",
          ("P7",)),
    # real shapes (issue 9): each needs a shape class of properties/strategies.py to show
    _attn("fixed64_max_not_rescaled", "fixed tile 64 (no recipe keyword): O and L not rescaled "
          "when a later tile raises the running max", ("P1",)),
    _attn("fixed64_merge_swapped", "fixed tile 64: first tile peeled, later merges with factors "
          "a and b swapped", ("P1",)),
    _attn("fixed64_rescale_bf16", "fixed tile 64: merge factors a, b rounded to bf16", ("P1",)),
    _attn("fixed64_sink_stale_max", "fixed tile 64: sink term exp(sink - m) with the first "
          "tile's max, not the final M", ("P1", "P6")),
    _attn("head_block2_q", "heads >= 16 read q[t, h % 16] (head offset of the second head "
          "block dropped)", ("P1",)),
    _attn("mtp_depth2_only", "positions s >= 2 see the rows of position 1 (kernel written for "
          "MTP depth <= 2)", ("P1",)),
    _attn("scale_isqrt", "default softmax scale 1 / isqrt(D)", ("P1", "P2")),
    _attn("scale_padded_d", "default softmax scale from the padded BLOCK_D = next_pow2(D)",
          ("P1", "P2")),
    # split-KV decode (AttnRecipe.kv_splits; drawn only for implementations that vary it)
    _attn("split_sink_dropped", "split-KV merge leaves the sink out of the denominator",
          ("P1", "P6")),
    _attn("split_first_max", "split-KV merge rescales by the first split's lse, not the largest "
          "(overflow once another split's lse exceeds it by ~88)", ("P1", "P6")),
    _attn("split_empty_unguarded", "split-KV merge does not skip empty splits: 0 * (0 / 0) = NaN",
          ("P1",)),
    _attn("split_unaligned", "split length cdiv(n, kv_splits) not rounded up to split_align",
          ("P1",)),
    _attn("split_running_max_as_tile", "P taken against the running max (p_max running) while "
          "the recipe says the tile max", ("P1",)),
    _attn("table_width_stride", "block-table row b read at b * width (width taken as the row "
          "stride of a table that is a row slice of a larger one)", ("P1", "P8", "P10")),
    _attn("padding_column_read", "pages of every block-table column prefetched, padding columns "
          "(-1, out-of-range ids) included", ("P1", "P8", "P10")),
    _attn("int32_page_offset", "pool element offset page * page_stride + row * D formed in int32, "
          "wrapping for a page at or past 2^31 elements", ("P1",)),
]

NO_ARG_CHECKS = ("impls/torch_reference.py is a numerics reference without the wrappers' argument "
                 "checks, so P13 (clear errors on bad input) rightly fails on it")

CONTROLS = [
    Control("bundled_attention", "sparse_attention", "kernelprop.kernels:sparse_decode_attention",
            "the bundled Triton kernel"),
    Control("torch_reference_attention", "sparse_attention",
            "impls/torch_reference.py:sparse_decode_attention", "independent torch implementation",
            exempt=(("P13", NO_ARG_CHECKS),)),
    Control("catalogue_base_attention", "sparse_attention", f"{ATTN}:reference",
            "the mutants' common base, no bug"),
    Control("negative_zero", "sparse_attention", f"{ATTN}:negative_zero",
            "benign: -0.0 for tokens with no valid key (IEEE-equal to the exact zero)"),
    Control("fixed_tile_64", "sparse_attention", f"{ATTN}:fixed_tile_64",
            "the base with a fixed tile of 64 and no recipe keyword (the fixed64_* mutants' base)"),
    Control("split_kv", "sparse_attention", f"{ATTN}:split_kv",
            "the base with split-KV (the split_* mutants' base; two-pass merge)"),
    Control("split_kv_reference", "sparse_attention", "impls/split_kv_reference.py:sparse_decode_attention",
            "independent split-KV implementation (SGLang's structure, online merge)"),
]


def entries() -> list:
    """Every mutant and control: those here and every registered op's own catalogue (its
    record's `catalogue`: a module with MUTANTS and CONTROLS)."""
    import importlib

    from kernelprop.registry import OPS

    modules = [importlib.import_module(o.catalogue) for o in OPS if o.catalogue]
    return MUTANTS + CONTROLS + [e for m in modules for e in m.MUTANTS + m.CONTROLS]


def by_name(name: str):
    """The mutant or control called `name` (KeyError naming the known ones otherwise)."""
    known = entries()
    for entry in known:
        if entry.name == name:
            return entry
    raise KeyError(f"no mutant or control {name!r}; known: {[e.name for e in known]}")
