"""The library as a whole: every program builds as strict OpenCL C 1.2 with its kernels."""

from __future__ import annotations

import pyopencl as cl
import pytest

from macecl.errors import MaceclError
from macecl.kernels import kernel_names, kernel_source, program_names, program_source

from .helpers import WIDEST

# program -> (the options of its fullest variant, its kernels): the engine's contract
PROGRAMS = {
    "conv2d": (f"-DVW={WIDEST} -DHAS_BIAS -DHAS_RESIDUAL -DACTIVATION=3 -DPACKED_COLS"
               " -DSTEM_TAPS -DSTEM_CIN=3 -DSTEM_KH=3 -DSTEM_KW=3 -DSTEM_SW=2",
               {"im2col", "pack_filter", "conv2d_gemm", "conv2d_direct", "conv2d_direct_wide",
                "depthwise_conv2d"}),
    "conv2d_tiled": ("-DTM=32 -DTN=64 -DHAS_BIAS -DHAS_RESIDUAL -DACTIVATION=3",
                     {"conv2d_tiled", "conv2d_tiled_reduce"}),
    "conv_transpose2d": (f"-DVW={WIDEST} -DHAS_BIAS -DACTIVATION=4 -DCO_BLOCK=4 -DPX=2 -DSTEP_H=2 -DSTEP_W=2",
                         {"conv_transpose2d", "conv_transpose2d_disjoint"}),
    "depthwise": ((f"-DVW={WIDEST} -DDW_KH=5 -DDW_KW=3 -DDW_SH=2 -DDW_SW=2 -DDW_BAND=8"
                   " -DHAS_BIAS -DHAS_RESIDUAL -DACTIVATION=7"), {"depthwise_rows", "pool_rows"}),
    "copy": ("-DMODE=1", {"copy_box", "copy_rows", "pad"}),
    "elementwise": ("-DOP=4", {"binary", "binary_flat", "binary_3d"}),
    "gemm": (f"-DVW={WIDEST} -DTRANS_A -DTRANS_B -DHAS_C -DACTIVATION=2", {"gemm", "matmul"}),
    "layer_norm": ("-DHAS_BIAS", {"layer_norm"}),
    "lrn": ("", {"lrn", "lrn_pixels"}),
    "pooling": (f"-DVW={WIDEST}", {"max_pool2d", "avg_pool2d", "global_avg_pool", "global_max_pool"}),
    "reduce": ("-DOP=5 -DSELECT_LAST", {"reduce", "arg_reduce"}),
    "resize": ("-DCOORD_MODE=3 -DNEAREST_MODE=1",
               {"resize_nearest", "resize_bilinear", "resize_nearest_blocks"}),
    "softmax": (f"-DLOG -DVW={WIDEST}", {"softmax", "softmax_rows"}),
    "squeeze_excite": (f"-DVW={WIDEST} -DHIDDEN_ACTIVATION=7 -DGATE_ACTIVATION=4", {"excite_scale"}),
    "transpose": ("", {"transpose", "transpose_rows", "transpose_tiles"}),
    "unary": ("-DOP=8", {"unary", "prelu"}),
    "winograd": (f"-DVW={WIDEST} -DWINO_M=4 -DHAS_BIAS -DHAS_RESIDUAL -DACTIVATION=3",
                 {"winograd_input", "winograd_output"}),
}


def test_every_program_is_covered():
    assert set(program_names()) == set(PROGRAMS)


@pytest.mark.parametrize("name", sorted(PROGRAMS))
def test_program_builds_strict_cl12(cl_env, name):
    options, kernels = PROGRAMS[name]
    source = program_source(name)
    assert '#include "' not in source  # every library header was inlined
    prg = cl._cl._Program(cl_env.ctx, source)
    prg.build(f"-cl-std=CL1.2 -Werror {options}".encode())
    names = set(prg.get_info(cl.program_info.KERNEL_NAMES).split(";"))
    assert names == kernels


@pytest.mark.parametrize("name, kernel", [(n, k) for n in sorted(PROGRAMS)
                                          for k in sorted(PROGRAMS[n][1])])
def test_each_kernel_builds_alone(cl_env, name, kernel):
    """What the engine builds: the program's source with its other kernels left out."""
    assert set(kernel_names(name)) == PROGRAMS[name][1]
    prg = cl._cl._Program(cl_env.ctx, kernel_source(name, kernel))
    prg.build(f"-cl-std=CL1.2 -Werror {PROGRAMS[name][0]}".encode())
    assert prg.get_info(cl.program_info.KERNEL_NAMES).split(";") == [kernel]


def test_an_unknown_kernel_is_named_with_the_programs_kernels():
    with pytest.raises(MaceclError, match="'pooling' has no kernel 'avg_pool'.*global_avg_pool"):
        kernel_source("pooling", "avg_pool")


@pytest.mark.parametrize("name", ["elementwise", "reduce"])
def test_programs_without_op_refuse_to_build(cl_env, name):
    """A missing -DOP must be a build error, never a silently chosen default op."""
    prg = cl._cl._Program(cl_env.ctx, program_source(name))
    with pytest.raises(cl.RuntimeError):
        prg.build(b"-cl-std=CL1.2")


def test_the_tiled_convolution_builds_strict_cl12_for_split_k(cl_env):
    """The -DPARTIAL variant (split-K partial sums) of conv2d_tiled, at its largest tile."""
    prg = cl._cl._Program(cl_env.ctx, program_source("conv2d_tiled"))
    prg.build(b"-cl-std=CL1.2 -Werror -DTM=64 -DTN=64 -DPARTIAL")
    assert "conv2d_tiled" in prg.get_info(cl.program_info.KERNEL_NAMES).split(";")
