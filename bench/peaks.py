"""Accelerators' peak FLOP/s, and model-FLOPs utilisation (MFU) against them.

MFU = the FLOPs the counter charged (bench/train/flops.py: the model's forward and backward, any EMA
teacher's forward) per second, over the peak of the devices that did them. The peak is each part's
dense bf16 tensor-core rate (without 2:4 sparsity, which NVIDIA's datasheets quote beside it at twice
the value), the rate a bf16-autocast step can reach; a run in fp32 is measured against it too, so its
MFU says how far it is from what bf16 would allow. The V100 has no bf16 tensor cores: its entry is
its fp16 tensor peak and says so (`precision`). A device not in the table (and the CPU) has no peak:
its MFU is None, its FLOP/s is still reported.

The part is matched from `torch.cuda.get_device_name()` ("NVIDIA H100 80GB HBM3" is the SXM part,
"NVIDIA H100 PCIe", "NVIDIA H100 NVL"), lower-cased, first match in table order (GH200 before H200).

Sources (the vendor's documents; each value was also checked against the third-party spec pages that
reproduce them, which agree with it unless said):
- H100 SXM 989.4, H100 PCIe 756, H100 NVL 835.5 (1,671 with sparsity per GPU): NVIDIA H100 Tensor
  Core GPU datasheet (nvidia.com/en-us/data-center/h100/), BF16 Tensor Core row, halved.
- H200 (SXM) 989.5 and H200 NVL 835.5: NVIDIA H200 datasheet (nvidia.com/en-us/data-center/h200/),
  1,979 and 1,671 with sparsity.
- GH200 989.5: NVIDIA GH200 Grace Hopper Superchip datasheet, 1,979 with sparsity.
- B200 2,250: NVIDIA HGX B200 specifications (nvidia.com/en-us/data-center/hgx/), FP16/BF16 Tensor
  Core 4.5 PFLOPS per GPU with sparsity.
- A100 (40/80 GB, SXM and PCIe) 312: NVIDIA A100 datasheet, BFLOAT16 Tensor Core 312 | 624*.
- A10 125: NVIDIA A10 datasheet, BF16 Tensor Core 125 | 250*. The A10G (AWS's variant) has no NVIDIA
  datasheet and lower tensor rates than the A10 (third-party figures disagree): no peak, MFU None.
- L4 121: NVIDIA L4 datasheet, BF16 Tensor Core 242* (with sparsity).
- L40S 362.05: NVIDIA L40S datasheet, BF16 Tensor Core 362.05 | 733*.
- GeForce RTX 4090 165.2: NVIDIA Ada Lovelace architecture whitepaper (appendix), peak BF16 Tensor
  TFLOPS with FP32 accumulate 165.2 | 330.4*.
- GeForce RTX 3090 71: NVIDIA Ampere GA102 architecture whitepaper (appendix A), peak BF16 Tensor
  TFLOPS with FP32 accumulate 71 | 142*.
- V100 SXM2 125, V100 PCIe 112 (fp16: no bf16): NVIDIA V100 datasheet, Tensor Performance.
"""

from dataclasses import dataclass


@dataclass(frozen=True)
class Peak:
    part: str  # the part's name as the table gives it: "H100 SXM"
    flops_per_s: float  # dense tensor-core peak of one device
    precision: str = "bf16"  # the rate's precision: "fp16" where the part has no bf16 tensor cores


T = 1e12
# (every lower-cased substring the device name must hold, the peak): the first match wins
PEAKS: tuple[tuple[tuple[str, ...], Peak | None], ...] = (
    (("gh200",), Peak("GH200", 989.5 * T)),
    (("h200", "nvl"), Peak("H200 NVL", 835.5 * T)),
    (("h200",), Peak("H200 SXM", 989.5 * T)),
    (("h100", "pcie"), Peak("H100 PCIe", 756 * T)),
    (("h100", "nvl"), Peak("H100 NVL", 835.5 * T)),
    (("h100",), Peak("H100 SXM", 989.4 * T)),  # "NVIDIA H100 80GB HBM3"
    (("b200",), Peak("B200", 2250 * T)),
    (("a100",), Peak("A100", 312 * T)),
    (("a10g",), None),  # no vendor datasheet (see the module docstring)
    (("a10",), Peak("A10", 125 * T)),
    (("l40s",), Peak("L40S", 362.05 * T)),
    (("l40",), None),  # the L40 (not in the table) must not be read as an L4
    (("l4",), Peak("L4", 121 * T)),
    (("rtx 4090",), Peak("GeForce RTX 4090", 165.2 * T)),
    (("rtx 3090",), Peak("GeForce RTX 3090", 71 * T)),
    (("v100", "pcie"), Peak("V100 PCIe", 112 * T, "fp16")),
    (("v100",), Peak("V100 SXM2", 125 * T, "fp16")),
)


def peak_of(device_name: str) -> Peak | None:
    """The device's peak from its `torch.cuda.get_device_name()`; None for the CPU or an unknown part."""
    name = device_name.lower()
    for needles, peak in PEAKS:
        if all(n in name for n in needles):
            return peak
    return None


def utilisation(flops: float, device_seconds: float, world: int, peak: Peak | None) -> dict:
    """{"flops_per_s", "mfu"} of `flops` charged over `device_seconds` (wall-clock x `world` processes):
    FLOP/s of the processes together, and that over `world` devices' peak (None without a peak).
    Both None when no time was charged."""
    if device_seconds <= 0:
        return {"flops_per_s": None, "mfu": None}
    per_device = flops / device_seconds
    return {"flops_per_s": per_device * world, "mfu": per_device / peak.flops_per_s if peak else None}
