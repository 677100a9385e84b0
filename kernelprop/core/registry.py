"""The op registry: one frozen record per kernel the suite verifies (docs/ARCHITECTURE.md, "Adding a
kernel"). Everything that runs per kernel iterates over `OPS`; nothing switches on a name or class:
kernelprop.core.impl (KINDS, BUNDLED, recipe and domain checks), the pytest plugin (one fixture per op,
--impl help), reports and replay (the Inputs object describes itself and computes its fp64 truth),
the mutant kill matrix (which fixture selects an op's tests) and P13 (the op's argument table).

References are "module:attribute" strings, resolved on first use, so importing the registry imports
neither torch, triton nor the bundled kernels (kernelprop's lazy import promise).
"""
from __future__ import annotations

import importlib
from dataclasses import dataclass
from typing import Any, Optional


def resolve(ref: str) -> Any:
    """The object a "module:attribute" reference names."""
    module, _, attr = ref.partition(":")
    obj = importlib.import_module(module)
    for part in attr.split("."):
        obj = getattr(obj, part)
    return obj


@dataclass(frozen=True, kw_only=True)
class Op:
    """Everything the suite needs to know about one kernel, by reference.

    kind        --impl NAME and Evidence.impl_kind ("sparse_attention")
    label       short name in tables and shape-class groups ("attn")
    fixture     the pytest fixture that yields the Impl under test
    recipe      recipe type (frozen dataclass; defaults = the contract's recipe)
    domain      domain type an implementation may declare (`fn.domain`)
    cases       case strategy: hypothesis strategy of the op's frozen Case (with seed)
    inputs      Inputs type: .call(fn, **kw), .state_dict(), .from_state_dict(), .describe(), .truth()
    make_inputs Case -> Inputs (tensors from the case's seed)
    trace       golden: the recipe-mirroring reference (with its per-element trace)
    truth       fp64 truth of the op (what Inputs.truth() calls)
    bounds      module holding the op's derived bounds (docs/bounds*.md)
    bundled     the bundled implementation "module:callable"
    bad_input   P13 argument table (properties/replays_bad_input.BadInputTable)
    by_size     --sizes preset: the target used on CPU above small sizes, or None
    property_ids the spec ids of its properties (kill-matrix columns; P13 = bad input)
    catalogue   module with its planted bugs (MUTANTS, CONTROLS) when not in impls.mutants
    shape_classes whether its property tests run over kernelprop.core.coverage's shape classes (label)
    limits      its plain-class size limits per backend and --sizes (kernelprop.core.sizes.SizePresets)
    compile_points  `./kp compile`'s configurations: scope ("reference" | "fast" | "sweep") ->
                points, each with .name, .reference and .launch(device) -> KernelLaunch
    explain     its kernelprop.core.causes.Explain: the root causes a failing example can prove, and the
                small case of the pre-flight call (None: neither)
    audit_case  () -> the Case one `./kp compile --impl KIND=...` call runs on (launches recorded)
    ptx_model   (instruction counts) -> one line: the CUDA figures P1 on a GPU must allow a kernel
                whose PTX has them (kernelprop.core.ptx_audit; docs/bounds.md#ptx-audit)
    exports     "module:attr" names `kernelprop` exports for adapters besides the recipe and
                domain types (e.g. the op's input check)
    """

    kind: str
    label: str
    fixture: str
    recipe: str
    domain: str
    cases: str
    inputs: str
    make_inputs: str
    trace: str
    truth: str
    bounds: str
    bundled: str
    bad_input: str
    by_size: Optional[str] = None
    property_ids: tuple[str, ...] = tuple(f"P{i}" for i in range(1, 14))
    catalogue: Optional[str] = None
    shape_classes: bool = True
    limits: Optional[str] = None
    compile_points: Optional[str] = None
    explain: Optional[str] = None
    audit_case: Optional[str] = None
    ptx_model: Optional[str] = None
    exports: tuple[str, ...] = ()

    @property
    def recipe_type(self) -> type:
        return resolve(self.recipe)

    @property
    def domain_type(self) -> type:
        return resolve(self.domain)

    @property
    def inputs_type(self) -> type:
        return resolve(self.inputs)

    @property
    def case_type(self) -> type:
        """The frozen Case type `make_inputs` takes (the annotation of its parameter)."""
        import inspect
        import typing

        make = resolve(self.make_inputs)
        return typing.get_type_hints(make)[next(iter(inspect.signature(make).parameters))]

    @property
    def size_presets(self):
        """The op's kernelprop.core.sizes.SizePresets (None: it declares no limits)."""
        return resolve(self.limits) if self.limits else None


G, P = "kernelprop.golden", "kernelprop.properties"
OPS: tuple[Op, ...] = (
    Op(kind="sparse_attention", label="attn", fixture="attn_impl",
       recipe=f"{G}.attention_inputs:AttnRecipe", domain=f"{G}.attention_inputs:AttnDomain",
       cases=f"{P}.attention_strategies:attn_cases", inputs=f"{G}.attention_inputs:AttnInputs",
       make_inputs=f"{G}.attention_inputs:make_attn_inputs", trace=f"{G}.attention:sparse_attention_trace",
       truth=f"{G}.attention:sparse_attention_fp64", bounds=f"{G}.attention_bounds",
       bundled="kernelprop.kernels.sparse_attention:sparse_decode_attention",
       bad_input=f"{P}.replays_attention_bad_input:TABLE",
       by_size=f"{P}.attention_limits:sparse_attention_by_size",
       limits=f"{P}.attention_limits:ATTN_SIZES",
       compile_points="kernelprop.kernels.sparse_attention_points:attention_points",
       explain=f"{P}.explain_attention:CAUSES", audit_case=f"{P}.attention_limits:attention_audit_case",
       ptx_model=f"{G}.attention_bounds:attention_ptx_model_line",
       catalogue="kernelprop.impls.mutants.attention",
       exports=("kernelprop.kernels.sparse_attention:check_attention_args",
                f"{G}.attention_slots:flat_slot_ids", f"{G}.attention_slots:FlatSlots")),
    Op(kind="rms_norm", label="norm", fixture="norm_impl",
       recipe=f"{G}.rmsnorm_inputs:NormRecipe", domain=f"{G}.rmsnorm_inputs:NormDomain",
       cases=f"{P}.norm_strategies:norm_cases", inputs=f"{G}.rmsnorm_inputs:NormInputs",
       make_inputs=f"{G}.rmsnorm_inputs:make_norm_inputs", trace=f"{G}.rmsnorm:rms_norm_trace",
       truth=f"{G}.rmsnorm:rms_norm_fp64", bounds=f"{G}.rmsnorm_bounds",
       bundled="kernelprop.kernels.rms_norm:rms_norm", bad_input=f"{P}.replays_norm_bad_input:TABLE",
       by_size=f"{P}.norm_limits:rms_norm_by_size", limits=f"{P}.norm_limits:NORM_SIZES",
       compile_points="kernelprop.kernels.rms_norm_points:norm_compile_points", explain=f"{P}.explain_norm:CAUSES",
       catalogue="kernelprop.impls.mutants.rmsnorm", exports=("kernelprop.kernels.rms_norm:check_norm_args",),
       audit_case=f"{P}.norm_limits:norm_audit_case", ptx_model=f"{G}.rmsnorm_bounds:norm_ptx_model_line"),
    Op(kind="indexer_topk", label="idx", fixture="indexer_impl",
       recipe=f"{G}.indexer:IndexerRecipe", domain=f"{G}.indexer:IndexerDomain",
       cases=f"{P}.indexer_strategies:indexer_cases", inputs=f"{G}.indexer:IndexerInputs",
       make_inputs=f"{G}.indexer:make_indexer_inputs", trace=f"{G}.indexer:indexer_topk_golden",
       truth=f"{G}.indexer:indexer_topk_fp64", bounds=f"{G}.indexer_bounds",
       bundled="kernelprop.kernels.sparse_indexer:sparse_indexer_topk",
       bad_input=f"{P}.replays_indexer_bad_input:TABLE",
       property_ids=("I1", "I2", "I3", "I4", "I5", "P13"),
       catalogue="kernelprop.impls.mutants.indexer", shape_classes=False,
       limits=f"{P}.indexer_limits:INDEXER_SIZES",
       compile_points="kernelprop.kernels.sparse_indexer_points:indexer_compile_points"),
    Op(kind="fused_add_rms_norm", label="fused", fixture="fused_impl",
       recipe=f"{G}.rmsnorm_inputs:NormRecipe", domain=f"{G}.fused_add_norm:FusedDomain",
       cases=f"{P}.fused_strategies:fused_cases", inputs=f"{G}.fused_add_norm:FusedInputs",
       make_inputs=f"{G}.fused_add_norm:make_fused_inputs",
       trace=f"{G}.fused_add_norm:fused_add_norm_trace",
       truth=f"{G}.fused_add_norm:fused_add_rms_norm_fp64", bounds=f"{G}.fused_add_norm_bounds",
       bundled="kernelprop.kernels.fused_add_rms_norm:fused_add_rms_norm",
       bad_input=f"{P}.replays_fused_bad_input:TABLE",
       property_ids=("F1", "F2", "F3", "F4", "F5", "P13"),
       catalogue="kernelprop.impls.mutants.fused", shape_classes=True,
       limits=f"{P}.fused_limits:FUSED_SIZES",
       compile_points="kernelprop.kernels.fused_add_rms_norm_points:fused_compile_points"),
)
BY_KIND: dict[str, Op] = {op.kind: op for op in OPS}
PROPERTY_IDS: tuple = tuple(dict.fromkeys(p for o in OPS for p in o.property_ids))


def op(kind: str) -> Op:
    """The record of `kind`; ValueError naming the known kinds otherwise."""
    try:
        return BY_KIND[kind]
    except KeyError:
        raise ValueError(f"unknown op kind {kind!r}, known: {sorted(BY_KIND)}") from None
