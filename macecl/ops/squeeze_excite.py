"""SqueezeExcite: the converter's fusion of a squeeze-and-excitation block
(converter/squeeze_excite.py), not an ONNX operator.

    SqueezeExcite(x, W1, B1, W2, B2; hidden_activation, gate_activation)
      m = mean of x over its spatial dims              (N, C)
      h = hidden_activation(W1 m + B1)                 W1 (CM, C, 1...), B1 (CM) or omitted
      y = x * gate_activation(W2 h + B2)               W2 (C, CM, 1...), B2 (C) or omitted

The activations are fused-activation triples (code, a, b) as ops/activations.py's
``activation_of`` makes them. Two launches: pooling.cl's global_avg_pool for the means, then
squeeze_excite.cl's excite_scale, where each work-group computes the whole first layer (CM x C
multiply-adds, a few thousand) and the gates and planes of a block of channels.

`POCL_KERNEL_CACHE=0 python bench/kernel_profile.py ppocr_cls,ppocr_rec --rounds 3`: PP-OCR
cls 75 -> 57 launches a run, rec 89 -> 85 (det's 10 blocks: 20 fewer). Wall times were
measured with 2 other jobs' load (4.4-7.8) on the 2 cores, and only cls shows a change beyond
the noise, not always: `python bench/compare_trees.py BEFORE --models ppocr_cls --rounds 21`
(interleaved, median ms before / after / ONNX Runtime) 1.3 / 1.2 / 1.2 and 1.2 / 1.2 / 1.2,
with 15 rounds 1.5 / 0.9 / 1.4; bench/latency.py, one process per model and tree in turn,
cls before / after 1.1 / 1.1 ms, then 1.6 / 2.9 ms. To be measured again on a quiet machine.
"""

from __future__ import annotations

import math

import numpy as np

from macecl.graph.ir import Node
from macecl.ops.activations import apply
from macecl.ops.registry import evaluation, lowering

GPU_ITEMS = 64  # work items of a group on a GPU: they split each phase (not measured there)
GPU_CHANNELS = 4  # channels of a group on a GPU, so that a layer's groups fill the device


def _activation(node: Node, name: str) -> tuple[int, float, float]:
    code, a, b = node.attrs.get(name, (0, 0.0, 0.0))
    return int(code), float(a), float(b)


@evaluation("SqueezeExcite")
def _evaluate(node: Node, arrays: list) -> list[np.ndarray]:
    x, w1, b1, w2, b2 = (list(arrays) + [None] * 5)[:5]
    hidden_width, channels = w1.shape[:2]
    means = x.reshape(*x.shape[:2], -1).astype(np.float64).mean(axis=2)
    hidden = _layer(node, "hidden_activation", means, w1.reshape(hidden_width, channels), b1)
    gate = _layer(node, "gate_activation", hidden, w2.reshape(channels, hidden_width), b2)
    return [(x * gate.reshape(*gate.shape, *(1,) * (x.ndim - 2))).astype(x.dtype)]


def _layer(node: Node, activation: str, values: np.ndarray, weight: np.ndarray, bias
           ) -> np.ndarray:
    """activation(values @ weight.T + bias), in float64."""
    code, a, b = _activation(node, activation)
    result = values @ weight.T.astype(np.float64)
    return apply(code, result if bias is None else result + bias.astype(np.float64), a, b)


@lowering("SqueezeExcite")
def _lower(node: Node, inputs: list, builder) -> list:
    x, w1, b1, w2, b2 = (list(inputs) + [None] * 5)[:5]
    if x.rank < 3 or w1 is None or w2 is None:
        raise builder.fail(f"input of rank {x.rank} with weights {w1 is not None and w2 is not None}"
                           ": SqueezeExcite needs N, C, spatial dims and both weights")
    n, channels = x.shape[:2]
    hidden_width = w1.shape[0]
    if w1.size != hidden_width * channels or w2.shape[0] != channels \
            or w2.size != channels * hidden_width:
        raise builder.fail(f"weights {list(w1.shape)} and {list(w2.shape)} do not fit an input "
                           f"of {channels} channels")
    biases = []
    for bias, size, name in ((b1, hidden_width, "B1"), (b2, channels, "B2")):
        if bias is None:
            bias = builder.constant(np.zeros(size, np.float32))
        if bias.size != size:
            raise builder.fail(f"{name} has {bias.size} values, not {size}")
        biases.append(bias)
    plane = math.prod(x.shape[2:])
    means = builder.new((n, channels))
    vector = [f"-DVW={builder.traits.vector_width}"]
    builder.launch("pooling", "global_avg_pool",
                   [x, means, np.int32(n * channels), np.int32(plane)], n * channels,
                   options=vector)
    items, block = _work_groups(builder.traits, channels)
    groups = n * -(-channels // block)
    scratch = builder.new((groups, hidden_width + block))
    out = builder.new(x.shape)
    hidden_code, hidden_a, hidden_b = _activation(node, "hidden_activation")
    gate_code, gate_a, gate_b = _activation(node, "gate_activation")
    args = [x, means, builder.view(w1, (hidden_width, channels)), biases[0],
            builder.view(w2, (channels, hidden_width)), biases[1], scratch, out,
            *(np.int32(v) for v in (n, channels, hidden_width, plane, block)),
            *(np.float32(v) for v in (hidden_a, hidden_b, gate_a, gate_b))]
    options = [*vector, f"-DHIDDEN_ACTIVATION={hidden_code}", f"-DGATE_ACTIVATION={gate_code}"]
    builder.launch("squeeze_excite", "excite_scale", args, groups * items, options=options,
                   local_size=(items,))
    return [out]


def _work_groups(traits, channels: int) -> tuple[int, int]:
    """(work items per group, channels per group) of excite_scale: on a CPU one item, which
    takes all of a sample's channels. Each group computes the first layer whole, so splitting
    the channels trades recomputation for parallelism; `python bench/op_kernels.py --cases
    excite --rounds 21` (PoCL, VW 16, load 4.6 from other jobs on the 2 cores), median ms of
    1 / 2 / 4 / 8 / 16 groups: cls 88->22->88 x 288 0.007 / 0.007 / 0.007 / 0.011 / 0.010,
    200->50 x 192 0.012 / 0.011 / 0.013 / 0.014 / 0.019, rec 480->120 x 480 0.071 / 0.077 /
    0.079 / 0.087 / 0.104, det 384->96 x 400 0.042 / 0.044 / 0.046 / 0.052 / 0.066, det
    96->24 x 25600 1.159 / 1.164 / 1.166 / 1.166 / 1.114 (a run of 15 rounds alike). One group
    is best or tied everywhere; the large det planes might gain from a second core on an
    idle machine, which this loaded one could not show."""
    if traits.cpu:
        return 1, channels
    return max(1, min(GPU_ITEMS, traits.work_group_size)), GPU_CHANNELS
