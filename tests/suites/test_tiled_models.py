"""Whole networks through the tiled convolution (ops/conv_tiled.py), forced on PoCL.

The GPU path is chosen by device traits, which PoCL's CPU device never has; here the traits
of a GPU are forced (as in tests/ops/test_conv_tiled.py) and two of the light networks run
with random weights against ONNX Runtime, as test_onnx_backend.py runs them on the plain
path: ResNet-50 (split-K in its late layers, fused residuals, the classifier's Gemm) and
SqueezeNet (narrow squeeze layers on 32-row tiles, concatenated expands).
"""

from __future__ import annotations

import pytest

from macecl.ops.traits import DeviceTraits

from . import test_onnx_backend as backend

GPU_LIKE = DeviceTraits(vector_width=4, local_memory_bytes=48 * 1024, work_group_size=1024,
                        compute_units=132)


@pytest.mark.parametrize("name", ["resnet50", "squeezenet"])
def test_light_model_random_weights_tiled(name, shared_context, tmp_path, monkeypatch):
    monkeypatch.setattr(DeviceTraits, "of", classmethod(lambda cls, device: GPU_LIKE))
    backend.test_light_model_random_weights(name, shared_context, tmp_path)
