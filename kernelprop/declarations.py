"""Input domains an implementation may declare (SPEC section 6, attribute `domain`).

A domain restricts what the strategies draw for that implementation, so that a kernel which only
supports, say, head dims {512, 576} or finite sinks is verified where it claims to work, and a
property that cannot be exercised inside the domain is skipped with the reason. Every field None
means "no restriction". Cases are *fitted* into the domain (a deterministic map of the drawn case,
so hypothesis still shrinks), never filtered away.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

from kernelprop.golden.domain import DomainValue, flag, kinds, most, sizes
from kernelprop.golden.inputs import NORM_DATA_KINDS


@dataclass(frozen=True)
class NormDomain(DomainValue):
    """RMSNorm inputs an implementation supports.

    dims:     supported last dims D; None: any.
    max_dim:  largest D; None: any.
    dtypes:   input dtypes among ("bf16", "fp32"); None: both.
    weight:   True: needs a weight, False: takes none, None: both.
    data:     data kinds among golden.inputs.NORM_DATA_KINDS; None: all.
    """

    dims: Optional[tuple] = sizes()
    max_dim: Optional[int] = most()
    dtypes: Optional[tuple] = kinds(("bf16", "fp32"))
    weight: Optional[bool] = flag()
    data: Optional[tuple] = kinds(NORM_DATA_KINDS)

    def fit(self, case):
        """The drawn NormCase mapped into the domain."""
        changes = {}
        if self.dims is not None and case.dim not in self.dims:
            changes["dim"] = self.dims[case.dim % len(self.dims)]
        if self.max_dim is not None and changes.get("dim", case.dim) > self.max_dim:
            changes["dim"] = self.max_dim
        if self.dtypes is not None and case.dtype not in self.dtypes:
            changes["dtype"] = self.dtypes[0]
        if self.weight is not None and case.weight != self.weight:
            changes["weight"] = self.weight
        if self.data is not None and case.data not in self.data:
            changes["data"] = self.data[NORM_DATA_KINDS.index(case.data) % len(self.data)]
        return case.replace(**changes) if changes else case
