"""Shape class large_offsets: cmp pages past 2^31 elements of a lazily allocated pool. The pool's
untouched pages stay unallocated through input generation, the golden, the classifier, the
report's state_dict and P10's garbage fill; the int32-offset mutant is wrong only there."""
import re

import torch

from kernelprop.core import coverage
from kernelprop.golden.attention import sparse_attention_golden
from kernelprop.golden.sampling import LARGE_OFFSET
from kernelprop.golden.attention_inputs import (AttnCase, AttnInputs,
                                                large_offset_base, make_attn_inputs)
from kernelprop.impls.mutants.attention import int32_page_offset, reference
from kernelprop.properties.test_attention_memory import fill_unread_rows

CASE = AttnCase(seed=3, head_dim=64, page_size=16, min_used=12, large_offsets=True)


def _rss_mib() -> int:
    return int(re.search(r"VmRSS:\s+(\d+)", open("/proc/self/status").read()).group(1)) // 1024


def test_pool_past_2_31_stays_unallocated():
    before = _rss_mib()
    x = make_attn_inputs(CASE)
    small = make_attn_inputs(CASE.replace(large_offsets=False))
    assert x.cmp_kv.numel() > LARGE_OFFSET
    base = large_offset_base(x.cmp_kv)
    assert base * 16 * 64 >= LARGE_OFFSET and int(x.cmp_block_table.min()) >= base
    assert torch.equal(x.call(sparse_attention_golden), small.call(sparse_attention_golden))
    assert "large_offsets" in coverage.classify(x)
    assert "large_offsets" not in coverage.classify(small)
    state = x.state_dict()
    assert state["cmp_kv"].shape[0] == small.cmp_kv.shape[0]
    back = AttnInputs.from_state_dict(state)
    assert torch.equal(back.call(sparse_attention_golden), small.call(sparse_attention_golden))
    x_b = fill_unread_rows(x, 1, "huge")
    assert torch.equal(x_b.call(reference), x.call(reference))
    x.describe()
    assert _rss_mib() - before < 256  # 4 GiB pools, a few MiB written


def test_int32_offset_mutant_wraps_only_past_2_31():
    x = make_attn_inputs(CASE)
    small = make_attn_inputs(CASE.replace(large_offsets=False))
    assert torch.equal(small.call(int32_page_offset), small.call(reference))
    assert not torch.equal(x.call(int32_page_offset), x.call(reference))
