"""FLOP counting with torch's FlopCounterMode, completed and corrected.

- torch's counter has formulas for the CUDA attention kernels but none for the CPU one
  (`aten._scaled_dot_product_flash_attention_for_cpu` and its backward), so attention
  would count 0 FLOPs on CPU and CPU/GPU budgets would not be comparable: the same
  formulas are registered for the CPU kernels.
- torch's convolution-backward formula ignores `groups` for the weight gradient, so a
  grouped conv's backward is charged `groups` times too much (data2vec 2.0's decoder,
  16 groups: 17x its forward instead of 2x). The weight gradient needs exactly the
  multiply-adds of the forward, which is what is registered instead.

`flop_counter_mode()` registers both (once) and returns a counter. One multiply-add
counts as 2 FLOPs.
"""

import torch
from torch.utils import flop_counter

_CPU_ATTENTION = (
    (torch.ops.aten._scaled_dot_product_flash_attention_for_cpu, flop_counter.sdpa_flop),
    (torch.ops.aten._scaled_dot_product_flash_attention_for_cpu_backward, flop_counter.sdpa_backward_flop),
)


def conv_backward_flop(
    grad_out_shape,
    x_shape,
    w_shape,
    _bias,
    _stride,
    _padding,
    _dilation,
    transposed,
    _out_pad,
    _groups,
    output_mask,
    out_shape=None,
    **kwargs,
) -> int:
    flops = 0
    if output_mask[0]:  # grad_input: a (transposed) conv of grad_out with the weight, as torch counts it
        flops += flop_counter.conv_flop_count(grad_out_shape, w_shape, out_shape[0], not transposed)
    if output_mask[1]:  # grad_weight: every weight element meets the same positions as in the forward
        flops += flop_counter.conv_flop_count(x_shape, w_shape, grad_out_shape, transposed)
    return flops


def register_formulas() -> None:
    registry = flop_counter.flop_registry
    for op, formula in _CPU_ATTENTION:
        if op not in registry:
            registry[op] = formula  # same argument order as the CUDA kernels
    registry[torch.ops.aten.convolution_backward] = flop_counter.shape_wrapper(conv_backward_flop)


def flop_counter_mode() -> flop_counter.FlopCounterMode:
    register_formulas()
    return flop_counter.FlopCounterMode(display=False)
