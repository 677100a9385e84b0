"""Roofline model of the bundled kernels on an H100 (docs/roofline.md derives every term).

A prediction is the largest of three times, assuming they overlap perfectly, divided by the grid's
wave efficiency: bytes that must cross HBM / HBM bandwidth, bytes the programs read from L2 /
L2 bandwidth, tensor-core flops / a derated tensor-core rate. Rates are assumptions (named
constants below), not measurements; `benchmarks/run_compile_table.py` measures the copy bandwidth
on the device in the same run and prints the prediction at that bandwidth beside the kernel time.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

HBM_BW = 3.0e12          # B/s: H100 SXM copy bandwidth (read + write) the SPEC's goal is stated at
L2_BW = 5.5e12           # B/s: L2 -> SM read bandwidth, an assumption (not measured here)
TC_BF16 = 989e12 * 0.5   # flop/s: dense bf16 tensor-core peak of an H100 SXM, derated to 50% for
                         # the narrow N = BLOCK_H (16-32) wgmma shapes (an assumption)
SMS = 132                # streaming multiprocessors of an H100 SXM


@dataclass(frozen=True)
class Roofline:
    """Per-launch traffic and the predicted time (microseconds) at the module's rates."""

    hbm_bytes: int           # each input byte read once, each output byte written once
    l2_bytes: int            # bytes the programs load (re-reads of shared rows included)
    flops: int               # tensor-core flops (2 per multiply-add)
    programs: int            # grid size
    programs_per_sm: int     # resident programs per SM (registers / shared memory)

    @property
    def wave_efficiency(self) -> float:
        """Busy fraction of the SM slots over ceil(programs / slots) waves."""
        slots = SMS * max(1, self.programs_per_sm)
        return self.programs / (math.ceil(self.programs / slots) * slots)

    def times_us(self, hbm_bw: float = HBM_BW) -> dict:
        return {"hbm": self.hbm_bytes / hbm_bw * 1e6, "l2": self.l2_bytes / L2_BW * 1e6,
                "tensor_core": self.flops / TC_BF16 * 1e6}

    def predicted_us(self, hbm_bw: float = HBM_BW) -> float:
        return max(self.times_us(hbm_bw).values()) / self.wave_efficiency


def attention_roofline(*, T: int, H: int, D: int, K: int, block_h: int, programs_per_sm: int = 1) -> Roofline:
    """Sparse decode attention: q [T, H, D] bf16, K gathered bf16 rows of D per token, o fp32,
    int32 indices. Each of the cdiv(H, block_h) head-block programs of a token loads the token's
    rows (from L2 after the first); q and o are read / written once."""
    n_hblk = -(-H // block_h)
    q, rows, o, idx = T * H * D * 2, T * K * D * 2, T * H * D * 4, T * K * 4
    return Roofline(hbm_bytes=q + rows + o + idx, l2_bytes=q + n_hblk * (rows + idx),
                    flops=2 * 2 * T * H * K * D, programs=T * n_hblk, programs_per_sm=programs_per_sm)


def norm_roofline(*, rows: int, dim: int, in_bytes: int, out_bytes: int, weight: bool, block_r: int,
                  programs_per_sm: int = 8) -> Roofline:
    """RMSNorm: x read once (one-block rows keep it in registers), y written once, weight read."""
    moved = rows * dim * (in_bytes + out_bytes) + (dim * in_bytes if weight else 0)
    return Roofline(hbm_bytes=moved, l2_bytes=moved, flops=0, programs=-(-rows // block_r),
                    programs_per_sm=programs_per_sm)
