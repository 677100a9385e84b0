"""Block tables as serving engines lay them out (golden.attention_inputs.engine_block_tables, shape class
engine_tables): the layout is what the class claims, and a correct kernel reads the same rows."""
import pytest
import torch

from kernelprop.golden import attention_classes
from kernelprop.golden.attention import sparse_attention_golden
from kernelprop.golden.attention_inputs import AttnCase, make_attn_inputs, reached_columns


@pytest.mark.parametrize("seed", range(8))
def test_engine_tables_layout_poison_and_shared_page(seed):
    case = AttnCase(seed=seed, batches=3, window=8, page_size=4, max_cmp_len=16, min_used=9,
                    engine_tables=True)
    x, plain = make_attn_inputs(case), make_attn_inputs(case.replace(engine_tables=False))
    reach = reached_columns(x.seqused_kv, window=x.window, page_size=x.ori_kv.shape[1])
    for name, pool, cols in (("ori_block_table", x.ori_kv, reach[0]),
                             ("cmp_block_table", x.cmp_kv, reach[1])):
        table, before = getattr(x, name), getattr(plain, name)
        assert table.stride(0) > table.shape[1] > before.shape[1] and table.storage_offset() > 0
        assert bool((table[:, -1] == pool.shape[0]).all()), "last column: the id past the pool"
        for b in range(3):
            n = int(cols[b])
            same = table[b, :n] == before[b, :n]
            if name == "cmp_block_table" and b == 1:
                assert int(table[1, 0]) == int(table[0, 0]), "prefix page shared by batches 0, 1"
                same = same[1:]
            assert bool(same.all()), "reached columns keep their pages"
    assert "engine_tables" in attention_classes.attn_classes(x, None)
    assert "engine_tables" not in attention_classes.attn_classes(plain, None)
    # the golden reads through the tables: batch 0 and 2 see what they saw before
    y, y0 = sparse_attention_golden(*x.args(), **x.kwargs()), \
        sparse_attention_golden(*plain.args(), **plain.kwargs())
    S = case.tokens_per_batch
    assert torch.equal(y[:S], y0[:S]) and torch.equal(y[2 * S:], y0[2 * S:])
