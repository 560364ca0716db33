"""The operator library: for each ONNX operator type, how to compute it on the host with NumPy
(constant folding and shape arithmetic) and how to lower it to kernel launches.

Importing this package registers every family; :data:`REGISTRY` is then complete.
"""

from macecl.ops.registry import REGISTRY, OpDef, supported_types
from macecl.ops import (  # noqa: F401  (each module registers its operators)
    activations,
    conv,
    einsum,
    elementwise,
    gemm,
    normalization,
    pooling,
    reduce,
    resize,
    shape_ops,
    softmax,
    squeeze_excite,
)

__all__ = ["REGISTRY", "OpDef", "supported_types"]
