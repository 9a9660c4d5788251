"""FLOP counting with torch's FlopCounterMode, complete on CPU too.

torch's counter has formulas for the CUDA attention kernels but none for the CPU one
(`aten._scaled_dot_product_flash_attention_for_cpu` and its backward), so attention
would count 0 FLOPs on CPU and CPU/GPU budgets would not be comparable. `flop_counter()`
registers the same formulas for the CPU kernels (once) and returns a counter.
One multiply-add counts as 2 FLOPs.
"""

import torch
from torch.utils import flop_counter

_CPU_ATTENTION = (
    (torch.ops.aten._scaled_dot_product_flash_attention_for_cpu, flop_counter.sdpa_flop),
    (torch.ops.aten._scaled_dot_product_flash_attention_for_cpu_backward, flop_counter.sdpa_backward_flop),
)


def register_cpu_attention() -> None:
    for op, formula in _CPU_ATTENTION:
        if op not in flop_counter.flop_registry:
            flop_counter.flop_registry[op] = formula  # same argument order as the CUDA kernels


def flop_counter_mode() -> flop_counter.FlopCounterMode:
    register_cpu_attention()
    return flop_counter.FlopCounterMode(display=False)
