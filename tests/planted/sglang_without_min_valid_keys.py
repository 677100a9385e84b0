"""SGLang's decode attention as shipped (impls/third_party/sglang_decode_attention.py), declared
without AttnDomain(min_valid_keys=1): the suite then draws tokens with no valid key, on which the
kernel's softmax has nothing to normalize. The issue-19 acceptance case of the root-causes
section on the real kernel (docs/measurements.md): every report it writes must share one cause."""
import dataclasses

from kernelprop.impls.third_party import sglang_decode_attention as shipped


def _without_min_valid_keys(fn):
    def adapter(*args, **kwargs):
        return fn(*args, **kwargs)

    adapter.recipe = fn.recipe
    adapter.validates_inputs = fn.validates_inputs
    adapter.domain = dataclasses.replace(fn.domain, min_valid_keys=None)
    return adapter


grouped_decode_attention = _without_min_valid_keys(shipped.grouped_decode_attention)
sparse_decode_attention = _without_min_valid_keys(shipped.sparse_decode_attention)
