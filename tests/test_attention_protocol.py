"""Sparse attention answers the per-op protocol (golden/values.py) that shared code asks: its
Case and Inputs types, its shape classes, report labels, kill-matrix size and report hints, and
the adapter-facing names its record exports."""
import math

import torch

import kernelprop
from kernelprop.core import coverage
from kernelprop.golden.attention_classes import ATTN_CLASSES, attn_classes
from kernelprop.golden.attention_inputs import AttnCase, AttnInputs, AttnRecipe, make_attn_inputs
from kernelprop.golden.values import OpCase, OpInputs
from kernelprop.commands.hints import evidence_hints
from kernelprop.commands.mutants import case_size
from kernelprop.properties.explain_attention import POS_INF_SINK
from kernelprop.core.registry import BY_KIND
from kernelprop.core.evidence import resolve
from kernelprop.commands.report import describe_labels
from kernelprop.core.verdict import Outcome

CASE = AttnCase(seed=3, batches=2, tokens_per_batch=3, heads=2, head_dim=8, page_size=4, window=4,
                topk=6, extra=1, max_cmp_len=12)


def test_case_and_inputs_satisfy_the_protocol():
    x = make_attn_inputs(CASE)
    assert isinstance(CASE, OpCase) and isinstance(x, OpInputs)
    assert AttnCase.from_dict({**CASE.to_dict(), "not_a_field": 1}) == CASE
    assert AttnInputs.SHAPE_CLASSES == ATTN_CLASSES == coverage.classes_of("attn")


def test_kill_matrix_size_is_t_times_k():
    T, K = 2 * 3, 4 + 6 + 1
    assert case_size(CASE.to_dict(), "sparse_attention") == (T * K, f"T={T} H=2 D=8 K={K}")
    assert BY_KIND["sparse_attention"].case_type is AttnCase and case_size(None, "sparse_attention") == (None, "")


def test_classify_asks_the_inputs_with_the_recipe_tile():
    x = make_attn_inputs(CASE)
    for tile in (1, 2, 64, None):
        recipe = AttnRecipe(tile=tile)
        assert coverage.classify(x, recipe) == attn_classes(x, tile) == x.shape_classes(recipe)
    assert "mtp_depth" in coverage.classify(x, AttnRecipe())


def test_report_labels_come_from_the_inputs_type():
    labels = describe_labels("kernelprop.golden.attention_inputs:AttnInputs")
    assert set(labels) == {"valid_positions", "valid_per_token"}
    assert set(labels) <= set(make_attn_inputs(CASE).describe())
    assert describe_labels("no.such.module:Type") == {} and describe_labels(None) == {}


def test_pos_inf_sink_hint_is_the_ops_own():
    x = make_attn_inputs(CASE.replace(sink="pos_inf"))
    assert bool((x.attn_sink == math.inf).all())
    o = torch.ones(x.q.shape[0], x.q.shape[1], x.q.shape[2])
    outcome = Outcome(actual=o, expected=torch.zeros_like(o), bound=None, bound_doc="")
    assert evidence_hints("P1", outcome, None, {"inputs": x}, AttnRecipe(),
                          kind="sparse_attention")[0] == POS_INF_SINK
    assert POS_INF_SINK not in evidence_hints("P1", outcome, None, {"inputs": x}, AttnRecipe(),
                                              kind="rms_norm")


def test_adapter_names_come_from_the_record():
    record = BY_KIND["sparse_attention"]
    for ref in (record.recipe, record.domain, *record.exports):
        name = ref.partition(":")[2]
        assert name in kernelprop.__all__ and getattr(kernelprop, name) is resolve(ref)
    from kernelprop import check_attention_args
    from kernelprop.golden.attention_inputs import AttnDomain, AttnRecipe as R
    from kernelprop.golden.attention_slots import FlatSlots, flat_slot_ids
    assert R is AttnRecipe
