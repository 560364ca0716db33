"""Planning: a graph plus concrete input shapes becomes a list of kernel launches and buffers.

Each node in turn is either evaluated on the host (all its inputs known there: constants,
shapes, the integer chains exporters build from them) or lowered by its operator family to
launches. Device tensors are :class:`Value`s backed by a :class:`Storage`; views (Reshape,
Squeeze, ...) share their source's storage. A storage may also lie within another, at an
element offset, bound as a sub-buffer: a Slice or Split output that is one range of its input
is a view of that range (``Builder.view_range``), and a Concat's inputs placed in its output
(``Builder.place_within``) are written there by their producers; neither copies anything.
Once every node is lowered, storages get buffers by liveness: a buffer whose last reader has
run is reused by a later tensor that fits; a storage within another lives in its buffer,
which stays in use while any storage within it does.

A plan depends only on the input shapes, so the engine keeps one per shape it has seen, and
a new shape re-plans without compiling anything new (the programs are keyed by their build
options, which carry no shape).
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Sequence
from typing import Any

import numpy as np

from macecl.errors import GraphError, UnsupportedModelError
from macecl.graph.ir import Graph, Node
from macecl.ops import REGISTRY
from macecl.ops.traits import DeviceTraits

FLOAT = np.dtype(np.float32)
FOREVER = 1 << 62


@dataclasses.dataclass(eq=False)
class Storage:
    """Device memory for one tensor and the views that share it."""

    elements: int
    first: int = FOREVER  # index of the first step that touches it
    last: int = -1  # index of the last step that touches it
    constant: str | None = None  # a graph constant: uploaded once per engine
    initial: np.ndarray | None = None  # a host value computed at plan time, uploaded per plan
    within: Storage | None = None  # the storage whose memory this one is a range of
    offset: int = 0  # where that range starts in ``within`` (elements)
    buffer_index: int = -1  # of the storage's root (the one within no other)

    def touch(self, step: int) -> None:
        self.first, self.last = min(self.first, step), max(self.last, step)

    def placement(self) -> tuple[Storage, int]:
        """The root storage this one lives in and its element offset there."""
        storage, offset = self, 0
        while storage.within is not None:
            storage, offset = storage.within, offset + storage.offset
        return storage, offset


@dataclasses.dataclass(eq=False)
class Value:
    """A tensor while planning: known on the host (``host``), or on the device (``storage``)."""

    shape: tuple[int, ...]
    host: np.ndarray | None = None
    storage: Storage | None = None
    constant: str | None = None  # the graph constant this host value is, if any

    @property
    def size(self) -> int:
        return math.prod(self.shape)

    @property
    def rank(self) -> int:
        return len(self.shape)

    @property
    def on_device(self) -> bool:
        return self.storage is not None


@dataclasses.dataclass(eq=False)
class Meta:
    """A small int32 array argument (shapes and strides of rank-generic kernels)."""

    values: np.ndarray


@dataclasses.dataclass(eq=False)
class Step:
    node: str
    op: str
    program: str
    options: tuple[str, ...]
    kernel: str
    args: list[Any]
    global_size: tuple[int, ...]  # the work items the kernel guards against, per dimension
    local_size: tuple[int, ...] | None = None  # fixed by the kernel (its local-memory tile)
    key: tuple = ()


@dataclasses.dataclass
class Plan:
    shapes: tuple[tuple[int, ...], ...]
    steps: list[Step]
    inputs: list[Value]  # one per graph input, in graph order
    outputs: list[Value]  # one per graph output
    buffer_sizes: list[int]  # bytes of each planned buffer

    @property
    def bytes(self) -> int:
        return sum(self.buffer_sizes)


class Builder:
    """What an operator family's ``lower`` uses to describe the work of one node."""

    def __init__(self, steps: list[Step], traits: DeviceTraits | None = None):
        self.steps = steps
        self.traits = traits or DeviceTraits()  # what the kernel variants are chosen by
        self.node: Node | None = None
        self._sub = 0

    def fail(self, why: str) -> GraphError:
        where = self.node.describe() if self.node else "graph"
        return GraphError(f"{where}: {why}")

    def new(self, shape: Sequence[int]) -> Value:
        """A fresh float32 device tensor."""
        shape = tuple(int(d) for d in shape)
        if any(d < 0 for d in shape):
            raise self.fail(f"computed a negative dimension: output shape {list(shape)}")
        return Value(shape, storage=Storage(math.prod(shape)))

    def view(self, value: Value, shape: Sequence[int]) -> Value:
        """``value`` with another shape of the same size, sharing its memory (no copy)."""
        shape = tuple(int(d) for d in shape)
        if math.prod(shape) != value.size:
            raise self.fail(f"cannot view {list(value.shape)} as {list(shape)}")
        if value.host is not None:  # a reshaped weight is still the same constant buffer
            return Value(shape, host=value.host.reshape(shape), constant=value.constant)
        return Value(shape, storage=value.storage)

    def view_range(self, value: Value, offset: int, shape: Sequence[int]) -> Value | None:
        """The elements of ``value`` from ``offset`` on as a tensor of ``shape``, sharing its
        memory (no copy); None where that cannot be: ``value`` is not a device tensor of the
        plan (a constant, a host value) or a sub-buffer cannot start at ``offset``
        (``DeviceTraits.address_align``)."""
        shape = tuple(int(d) for d in shape)
        size, storage = math.prod(shape), value.storage
        if storage is None or storage.constant is not None or storage.initial is not None:
            return None
        if not 0 <= offset <= value.size - size:
            raise self.fail(f"cannot view {size} elements at {offset} of {list(value.shape)}")
        if not size or (offset * FLOAT.itemsize) % self.traits.address_align:
            return None
        return Value(shape, storage=Storage(size, within=storage, offset=offset))

    def place_within(self, part: Value, whole: Value, offset: int) -> bool:
        """Make ``part``'s memory the range of ``whole``'s that starts at element ``offset``,
        so that whatever wrote or writes ``part`` writes it there; False (nothing changed)
        where it cannot be: ``part`` is not a device tensor computed by the plan (a graph
        input, a constant, a host value), it is already placed (it appears twice, or in two
        Concats), or the offset is not at an address the device can start a sub-buffer at
        (``DeviceTraits.address_align``). The range must lie within ``whole``; ``whole``'s
        storage must not be placed within ``part``'s."""
        storage, target = part.storage, whole.storage
        if storage is None or target is None or storage.within is not None or not part.size:
            return False
        if storage.constant is not None or storage.initial is not None or storage.first < 0:
            return False
        if storage.elements != part.size or not 0 <= offset <= target.elements - part.size:
            raise self.fail(f"cannot place {list(part.shape)} at {offset} within "
                            f"{list(whole.shape)}")
        if target.placement()[0] is storage:
            return False
        if (offset * FLOAT.itemsize) % self.traits.address_align:
            return False
        storage.within, storage.offset = target, offset
        return True

    def constant(self, array: np.ndarray | float) -> Value:
        """A host value made while lowering (a scale, a shape): uploaded if a launch needs it."""
        array = np.asarray(array)
        return Value(tuple(array.shape), host=array)

    def host(self, value: Value | None, what: str) -> np.ndarray:
        """The host array of an input that must be known before running (a shape, axes...)."""
        if value is None:
            raise self.fail(f"{what} is required")
        if value.host is None:
            raise self.fail(f"{what} is computed on the device, but macecl needs it at planning "
                            f"time (it must follow from constants and input shapes)")
        return value.host

    def device(self, value: Value) -> Value:
        """``value`` on the device, uploading a host array (constants once per engine)."""
        if value.storage is not None:
            return value
        array = np.asarray(value.host)
        if array.dtype.kind not in "fiub":
            raise self.fail(f"a {array.dtype} tensor cannot go to the device")
        if value.constant is not None and array.dtype == FLOAT:
            storage = Storage(array.size, constant=value.constant)
        else:
            storage = Storage(array.size, initial=np.ascontiguousarray(array, dtype=FLOAT))
        value.storage = storage
        return value

    def launch(self, program: str, kernel: str, args: Sequence[Any],
               global_size: int | Sequence[int], options: Sequence[str] = (),
               local_size: Sequence[int] | None = None) -> None:
        """One kernel launch. ``args``: Values (uploaded if on the host), Meta, NumPy scalars, None.

        ``global_size`` is the logical work (1 to 3 dimensions): the engine may round each
        dimension up to a multiple of the work-group size, so every kernel must guard its
        dimensions against sizes it is passed, never against ``get_global_size``. A kernel
        whose local-memory tiling needs one work-group shape passes it as ``local_size``;
        others leave it to the tuner (tuned_opencl_parameter.bin) or the default.
        """
        global_size = (int(global_size),) if np.isscalar(global_size) else tuple(map(int, global_size))
        if not 1 <= len(global_size) <= 3:
            raise self.fail(f"kernel {kernel} launched over {len(global_size)} dimensions")
        if min(global_size) <= 0:
            return  # an empty tensor: nothing to compute
        if local_size is not None:
            local_size = tuple(map(int, local_size))
            if len(local_size) != len(global_size):
                raise self.fail(f"kernel {kernel}: local size {local_size} does not match "
                                f"global size {global_size}")
        options = (*options, *self.traits.build_options)
        resolved = [self.device(a) if isinstance(a, Value) else a for a in args]
        index = len(self.steps)
        for arg in resolved:
            if isinstance(arg, Value):
                arg.storage.touch(index)
        node = self.node.name if self.node else ""
        self._sub += 1
        self.steps.append(Step(node, self.node.op if self.node else "", program,
                               tuple(options), kernel, resolved, global_size, local_size,
                               (node, self._sub, program, tuple(options), kernel)))

    def start(self, node: Node) -> None:
        self.node, self._sub = node, 0


def meta(*rows: Sequence[int]) -> Meta:
    values = np.concatenate([np.asarray(r, dtype=np.int64).ravel() for r in rows] or [[]])
    if values.size and (values.max() > np.iinfo(np.int32).max or values.min() < np.iinfo(np.int32).min):
        raise GraphError("a shape or stride does not fit in 32 bits")
    return Meta(values.astype(np.int32))


def make_plan(graph: Graph, shapes: Sequence[tuple[int, ...]],
              traits: DeviceTraits | None = None) -> Plan:
    """Lower ``graph`` for inputs of ``shapes`` (in graph input order) on a device of ``traits``."""
    steps: list[Step] = []
    builder = Builder(steps, traits)
    values: dict[str, Value] = {}
    inputs = []
    for spec, shape in zip(graph.inputs, shapes):
        value = Value(tuple(shape), storage=Storage(math.prod(shape), first=-1))
        values[spec.name] = value
        inputs.append(value)
    for name, array in graph.constants.items():
        values.setdefault(name, Value(tuple(array.shape), host=array, constant=name))
    for node in graph.nodes:
        args = [values.get(name) if name else None for name in node.inputs]
        missing = [name for name, arg in zip(node.inputs, args) if name and arg is None]
        if missing:
            raise GraphError(f"{node.describe()}: inputs {missing} are produced by no node")
        results = _run_node(node, args, builder)
        for name, result in zip(node.outputs, results):
            if name:
                values[name] = result
    outputs = []
    for spec in graph.outputs:
        value = values.get(spec.name)
        if value is None:
            raise GraphError(f"graph output {spec.name!r} is produced by no node")
        if value.storage is not None:
            value.storage.touch(FOREVER)
        outputs.append(value)
    sizes = _assign_buffers(inputs, outputs, steps)
    return Plan(tuple(tuple(s) for s in shapes), steps, inputs, outputs, sizes)


def _run_node(node: Node, args: list[Value | None], builder: Builder) -> list[Value]:
    definition = REGISTRY.get(node.op)
    if definition is None:
        raise UnsupportedModelError({node.op: [node.name]})
    if definition.evaluate is not None and all(a is None or a.host is not None for a in args):
        try:
            arrays = definition.evaluate(node, [None if a is None else a.host for a in args])
        except GraphError:
            raise
        except Exception as error:  # NumPy's own complaint about shapes, axes...
            raise GraphError(f"{node.describe()}: {error}") from error
        return [Value(tuple(np.shape(a)), host=np.asarray(a)) for a in arrays]
    if definition.lower is None:
        raise GraphError(
            f"{node.describe()}: macecl runs this operator only on values known before the run "
            f"(constants and shapes), but an input of it is computed on the device")
    builder.start(node)
    return definition.lower(node, args, builder)


def _assign_buffers(inputs: list[Value], outputs: list[Value], steps: list[Step]) -> list[int]:
    """Give every device storage a buffer index, sharing buffers between disjoint lifetimes.

    Buffers go to root storages; a storage placed within another takes its root's buffer,
    and the root's lifetime covers the lifetimes of everything placed in it."""
    storages: dict[int, Storage] = {}
    for step in steps:
        for arg in step.args:
            if isinstance(arg, Value):
                storages[id(arg.storage)] = arg.storage
    for value in (*inputs, *outputs):
        if value.storage is not None:
            storages[id(value.storage)] = value.storage
    spans: dict[int, tuple[Storage, int, int]] = {}  # root id -> (root, first step, last step)
    for storage in storages.values():
        root = storage.placement()[0]
        _, first, last = spans.get(id(root), (root, root.first, root.last))
        spans[id(root)] = (root, min(first, storage.first), max(last, storage.last))
    pinned = {id(v.storage.placement()[0]) for v in (*inputs, *outputs) if v.storage is not None}
    sizes: list[int] = []
    free: list[int] = []  # buffer indices not in use
    busy: list[tuple[int, int]] = []  # (last step, buffer index)
    for root, first, last in sorted(spans.values(), key=lambda span: span[1]):
        if root.constant is not None:
            continue  # weights live in the engine's constant buffers
        needed = max(4, root.elements * FLOAT.itemsize)
        if id(root) in pinned or root.initial is not None:
            root.buffer_index = len(sizes)
            sizes.append(needed)
            continue
        free += [index for end, index in busy if end < first]
        busy = [(end, index) for end, index in busy if end >= first]
        fitting = [i for i in free if sizes[i] >= needed]
        if fitting:
            index = min(fitting, key=lambda i: sizes[i])
            free.remove(index)
        elif free:
            index = max(free, key=lambda i: sizes[i])  # grow the largest free one
            free.remove(index)
            sizes[index] = needed
        else:
            index = len(sizes)
            sizes.append(needed)
        root.buffer_index = index
        busy.append((last, index))
    for storage in storages.values():
        storage.buffer_index = storage.placement()[0].buffer_index
    return sizes
