"""squeeze_excite.cl's excite_scale against the excitation written in NumPy (float64)."""

from __future__ import annotations

import numpy as np
import pytest

from macecl.ops.activations import CODES, apply

from .helpers import WIDEST, assert_close, at_most_widest

RELU, HARD_SIGMOID, SIGMOID, HARD_SWISH = (CODES[name] for name in
                                           ("Relu", "HardSigmoid", "Sigmoid", "HardSwish"))


def excite_ref(x, means, w1, b1, w2, b2, hidden, gate):
    h = apply(hidden[0], means.astype(np.float64) @ w1.T.astype(np.float64) + b1, *hidden[1:])
    s = apply(gate[0], h @ w2.T.astype(np.float64) + b2, *gate[1:])
    return x.astype(np.float64) * s[:, :, None]


@pytest.mark.parametrize(
    "n,channels,hidden_width,plane,block,items,vw",
    at_most_widest([
        (1, 8, 2, 1152, 2, 1, 16),  # PP-OCR cls's first block, in groups of two channels
        (1, 480, 120, 480, 120, 1, 16),  # PP-OCR rec's last block, four groups
        (2, 37, 9, 61, 5, 1, 16),  # odd sizes: a plane, channels and a dot product with tails
        (3, 13, 1, 7, 13, 1, 8),  # one hidden unit, planes shorter than a vector, one block
        (2, 21, 6, 45, 4, 5, 4),  # five items a group share each phase; last block of one
        (1, 96, 24, 400, 4, 64, 16),  # the GPU's shape: 64 items, 4 channels a group
        (2, 5, 3, 1, 2, 3, 4),  # 1x1 planes: a vector covers nothing, all tail
    ], at=6),
)
def test_excite_scale(cl_env, rng, n, channels, hidden_width, plane, block, items, vw):
    x = rng.standard_normal((n, channels, plane)).astype(np.float32)
    means = x.mean(axis=2) + rng.standard_normal((n, channels)).astype(np.float32)
    w1 = rng.standard_normal((hidden_width, channels)).astype(np.float32)
    b1 = rng.standard_normal(hidden_width).astype(np.float32)
    w2 = (rng.standard_normal((channels, hidden_width)) / np.sqrt(hidden_width)).astype(np.float32)
    b2 = rng.standard_normal(channels).astype(np.float32)
    groups = n * -(-channels // block)
    scratch = np.zeros(groups * (hidden_width + block), np.float32)
    hidden, gate = (RELU, 0.0, 0.0), (HARD_SIGMOID, 0.2, 0.5)
    options = f"-DVW={vw} -DHIDDEN_ACTIVATION={RELU} -DGATE_ACTIVATION={HARD_SIGMOID}"
    # the scratch is written: an output buffer of its own, passed among the inputs' places
    scratch_buffer = cl_env.output(scratch.shape)
    out = cl_env.output(x.shape)
    cl_env.launch("squeeze_excite", options, "excite_scale", (groups * items,),
                  *[cl_env.buffer(a) for a in (x, means, w1, b1, w2, b2)], scratch_buffer, out,
                  n, channels, hidden_width, plane, block, *hidden[1:], *gate[1:],
                  local_size=(items,))
    assert_close(cl_env.read(out, x.shape), excite_ref(x, means, w1, b1, w2, b2, hidden, gate))


@pytest.mark.parametrize("hidden,gate", [
    ((0, 0.0, 0.0), (SIGMOID, 0.0, 0.0)),  # no hidden activation, a sigmoid gate
    ((HARD_SWISH, 0.0, 0.0), (0, 0.0, 0.0)),  # HardSwish, no gate activation
    ((CODES["LeakyRelu"], 0.1, 0.0), (CODES["Clip"], -0.5, 2.0)),  # activations' a and b
])
def test_excite_scale_activations(cl_env, rng, hidden, gate):
    n, channels, hidden_width, plane, block = 2, 12, 5, 33, 5
    x = rng.standard_normal((n, channels, plane)).astype(np.float32)
    means = x.mean(axis=2)
    w1 = rng.standard_normal((hidden_width, channels)).astype(np.float32)
    w2 = rng.standard_normal((channels, hidden_width)).astype(np.float32)
    b1, b2 = np.zeros(hidden_width, np.float32), rng.standard_normal(channels).astype(np.float32)
    groups = n * -(-channels // block)
    options = f"-DVW={WIDEST} -DHIDDEN_ACTIVATION={hidden[0]} -DGATE_ACTIVATION={gate[0]}"
    out = cl_env.output(x.shape)
    cl_env.launch("squeeze_excite", options, "excite_scale", (groups,),
                  *[cl_env.buffer(a) for a in (x, means, w1, b1, w2, b2)],
                  cl_env.output((groups * (hidden_width + block),)), out,
                  n, channels, hidden_width, plane, block, *hidden[1:], *gate[1:],
                  local_size=(1,))
    assert_close(cl_env.read(out, x.shape), excite_ref(x, means, w1, b1, w2, b2, hidden, gate))
