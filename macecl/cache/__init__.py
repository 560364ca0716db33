"""The compiled-program cache: the MCLP file format and its on-disk store.

Knows bytes and files, not pyopencl: the runtime hands it fingerprints, keys and binaries.
"""
