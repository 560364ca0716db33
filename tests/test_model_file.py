"""The .macecl writer: the same graph gives the same bytes, and the file is plain safetensors."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from safetensors.numpy import load as safetensors_load

from macecl.errors import ModelFormatError
from macecl.graph import model_file
from macecl.graph.ir import Graph, Node, TensorSpec

RNG = np.random.default_rng(11)
CONSTANTS = {
    "w": RNG.standard_normal((4, 3, 3, 3)).astype(np.float32),
    "shape": np.array([1, -1], np.int64),
    "mask": np.array([True, False, True]),
    "half": RNG.standard_normal(5).astype(np.float16),
    "big_endian": RNG.standard_normal(3).astype(">f4"),
    "scalar": np.array(2.5, np.float64),
    "empty": np.zeros((0, 3), np.float32),
    "steps": np.array([1, 2, 3], np.uint16),
}


def graph(constants: dict[str, np.ndarray]) -> Graph:
    return Graph(nodes=[Node("Conv", "conv", ["x", "w"], ["y"], {"pads": [1, 1, 1, 1]})],
                 inputs=[TensorSpec("x", "float32", [1, 3, 8, 8])],
                 outputs=[TensorSpec("y", "float32", [1, 4, 8, 8])],
                 constants=constants, opset=13, metadata={"author": "ünïcode"})


SAVE_IN_A_NEW_PROCESS = """
import sys
sys.path.insert(0, {tests!r})
from test_model_file import CONSTANTS, graph
from macecl.graph import model_file
model_file.save(graph(CONSTANTS), sys.argv[1])
"""


def test_one_graph_saved_twice_gives_the_same_bytes(tmp_path):
    """The safetensors package ordered the metadata by a hash map seeded in each process."""
    script = SAVE_IN_A_NEW_PROCESS.format(tests=str(Path(__file__).parent))
    files = []
    for n in range(3):
        files.append(tmp_path / f"{n}.macecl")
        subprocess.run([sys.executable, "-c", script, str(files[-1])], check=True)
    reversed_order = dict(reversed(list(CONSTANTS.items())))
    files.append(model_file.save(graph(reversed_order), tmp_path / "reversed.macecl"))
    contents = {path.read_bytes() for path in files}
    assert len(contents) == 1


def test_the_file_is_read_by_the_safetensors_package(tmp_path):
    path = model_file.save(graph(CONSTANTS), tmp_path / "m.macecl")
    theirs = safetensors_load(path.read_bytes())
    assert sorted(theirs) == sorted(CONSTANTS)
    for name, array in CONSTANTS.items():
        assert theirs[name].dtype == array.dtype.newbyteorder("=")
        np.testing.assert_array_equal(theirs[name], array)


def test_the_file_reads_back_with_every_weight_aligned(tmp_path):
    path = model_file.save(graph(CONSTANTS), tmp_path / "m.macecl")
    loaded = model_file.load(path)
    assert loaded.metadata == {"author": "ünïcode"}
    assert loaded.nodes[0].attrs == {"pads": [1, 1, 1, 1]}
    for name, array in CONSTANTS.items():
        np.testing.assert_array_equal(loaded.constants[name], array)
        assert loaded.constants[name].flags.aligned, name


def test_a_constant_no_safetensors_dtype_holds_is_refused_by_name(tmp_path):
    bad = dict(CONSTANTS, phases=np.array([1 + 2j], np.complex64))
    with pytest.raises(ModelFormatError, match="'phases' has dtype complex64"):
        model_file.save(graph(bad), tmp_path / "m.macecl")
    assert not (tmp_path / "m.macecl").exists()
