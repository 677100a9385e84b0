"""Sparse attention's compile configurations for `./kp compile` (its registry record's
`compile_points`): launch shapes whose KernelLaunch is the wrapper's own
(kernels.sparse_attention.attention_launch).

Reference (gated: no spill, no stack frame): the DSV4 decode config (SPEC section 2) and D in
{64, 128, 576} at H = 64."""
from __future__ import annotations

from dataclasses import dataclass, field

from kernelprop.golden.attention_inputs import AttnCase, AttnRecipe

# The DSV4 decode shape (SPEC section 2) as a case: the attention points' default shape
DSV4_SHAPE = AttnCase(seed=0, batches=64, tokens_per_batch=2, heads=64, head_dim=512, page_size=128,
                      window=128, topk=512, max_cmp_len=2048, nan_unused=False)


@dataclass(frozen=True)
class AttnPoint:
    """One sparse-attention launch: a shape (the golden.attention_inputs.AttnCase fields that set shapes;
    its seed and data fields are not used) and a recipe."""

    name: str
    shape: AttnCase = DSV4_SHAPE
    recipe: AttnRecipe = field(default_factory=AttnRecipe)
    reference: bool = False       # gated: no spill, no stack frame

    kind = "attention"

    @property
    def tokens(self) -> int:
        return self.shape.batches * self.shape.tokens_per_batch

    @property
    def indices(self) -> int:
        return self.shape.window + self.shape.topk

    def case(self, device: str) -> AttnCase:
        """The case of this point (real tensors, e.g. on the device): every window row and
        compressed slot visible, no NaN in unused pool rows."""
        s = self.shape
        return s.replace(min_used=s.window + s.max_cmp_len - 1, nan_unused=False, device=device)

    def launch(self, device: str = "meta"):
        """The KernelLaunch the wrapper would run for this point (tensor shapes only on "meta")."""
        import torch

        from kernelprop.kernels.sparse_attention import fp32_scale, attention_launch

        s = self.shape
        B, S, H, D, BS = s.batches, s.tokens_per_batch, s.heads, s.head_dim, s.page_size
        T, K = B * S, self.indices
        ori_blocks = -(-s.window // BS)
        cmp_blocks = max(1, -(-s.max_cmp_len // BS))
        bf16, i32 = torch.bfloat16, torch.int32
        if device == "meta":
            e = lambda *shape, dtype: torch.empty(*shape, dtype=dtype, device="meta")  # noqa: E731
            x = dict(q=e(T, H, D, dtype=bf16), ori_kv=e(B * ori_blocks + 1, BS, D, dtype=bf16),
                     ori_block_table=e(B, ori_blocks, dtype=i32), cmp_kv=e(B * cmp_blocks + 1, BS, D, dtype=bf16),
                     cmp_block_table=e(B, cmp_blocks, dtype=i32), sparse_indices=e(T, K, dtype=i32),
                     seqused_kv=e(B, dtype=i32), attn_sink=e(H, dtype=torch.float32))
        else:
            from kernelprop.golden.attention_inputs import make_attn_inputs

            inputs = make_attn_inputs(self.case(device))
            x = {name: getattr(inputs, name) for name in ("q", "ori_kv", "ori_block_table", "cmp_kv",
                                                          "cmp_block_table", "sparse_indices",
                                                          "seqused_kv", "attn_sink")}
        o = torch.empty(T, H, D, dtype=torch.float32, device=device)
        return attention_launch(*x.values(), o, window=s.window, tokens_per_batch=S,
                                scale=fp32_scale(None, D), recipe=self.recipe)


DSV4 = AttnPoint("attn dsv4 (H64 D512 K640 tile64)", reference=True)


def attention_points(scope: str) -> list:
    """Attention's points (its registry record's `compile_points`). "reference" (gated): the DSV4
    decode config and D in {64, 128, 576} at H=64; "fast" (CI): DSV4 and D=576 (the widest head
    dim the suite draws on CUDA); "sweep": everything the CUDA limits of the strategies can reach,
    by configuration class: head dims (powers of two, odd, 576), head counts below / at / above one
    head block, tiles (1, odd, 64, > a lane block, untiled-like 640), every recipe flag at DSV4."""
    ref = [DSV4, *(AttnPoint(f"attn H64 D{d} K640 tile64", DSV4_SHAPE.replace(head_dim=d),
                                  reference=True) for d in (64, 128, 576))]
    if scope == "reference":
        return ref
    if scope == "fast":
        return [p for p in ref if p.name in (DSV4.name, "attn H64 D576 K640 tile64")]
    pts = list(ref)
    small = dict(batches=4, page_size=64, window=128, topk=512, max_cmp_len=1024)
    for d in (16, 17, 40, 64, 128, 256, 512, 576):
        for h in (3, 16, 64):
            for tile in (1, 33, 64, 100):
                pts.append(AttnPoint(f"attn H{h} D{d} tile{tile}",
                                     DSV4_SHAPE.replace(heads=h, head_dim=d, **small),
                                     recipe=AttnRecipe(tile=tile)))
    for changes in (dict(p_dtype="fp32"), dict(l_from="unrounded"), dict(rounding="rtz"),
                    dict(rounding="rna"), dict(tile=640), dict(tile=128), dict(tile=16)):
        label = " ".join(f"{k}={v}" for k, v in changes.items())
        pts.append(AttnPoint(f"attn dsv4 {label}", recipe=AttnRecipe(**changes)))
    return pts
