"""The OpenCL runtime: devices, programs (precompiled -> cache -> source), contexts."""
