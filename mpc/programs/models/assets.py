"""Model assets: ONNX networks a party owns and applies to other parties' rows
without revealing its weights (inference.py).

What is secret and what is public: an asset's weights are its graph's
initializers; they are secret-shared from the owner inside a job, and the other
parties build the same network from a skeleton, the graph with every initializer
zeroed (`skeleton`). The graph itself (operators, shapes, attributes, Constant
nodes) is public to the job's parties: CrypTen evaluates Constant nodes in
plaintext at every party, so registration refuses a Constant holding more than
`MAX_CONSTANT_VALUES` floating-point values (weights hidden where they would leak).
"""

from __future__ import annotations

import io
import math
from typing import Any

import numpy as np

from mpc.errors import InvalidArgument
from mpc.programs.models import network

MAX_CONSTANT_VALUES = 16
MAX_BYTES = 64 << 20
_FLOAT_TYPES = {1, 10, 11, 16}  # onnx.TensorProto FLOAT, FLOAT16, DOUBLE, BFLOAT16


def inspect(data: bytes, input_shape: list[int], output: str) -> int:
    """Checks an ONNX file as an asset: it parses, CrypTen supports every operator
    and attribute, no Constant hides weights, and it maps a batch of the declared
    input shape to a batch of outputs (run once, in plaintext, on zeros). Returns
    the number of outputs per row. Raises InvalidArgument saying what is wrong."""
    import onnx

    if not data or len(data) > MAX_BYTES:
        raise InvalidArgument(f"a model asset is an ONNX file of 1 byte to {MAX_BYTES >> 20} MiB")
    if not input_shape or any(d < 1 for d in input_shape) or math.prod(input_shape) > 1 << 20:
        raise InvalidArgument("input_shape must list the input's dimensions without the batch, each at least 1")
    if output not in network.OUTPUTS:
        raise InvalidArgument(f"output must be one of {', '.join(network.OUTPUTS)}")
    try:
        graph = onnx.load_model_from_string(data).graph
    except Exception as err:  # noqa: BLE001  (any parse failure means: not an ONNX model)
        raise InvalidArgument(f"not an ONNX model: {type(err).__name__}") from None
    if not graph.node:
        raise InvalidArgument("not an ONNX model: the file holds no graph nodes")
    _supported(graph)
    crypten_module(data)
    return _outputs(graph, input_shape, output)


def _outputs(graph: Any, input_shape: list[int], output: str) -> int:
    """The declared input shape against the graph's input; the outputs per row from
    the graph's output shape (a batch of rows, one vector each)."""
    weights = {i.name for i in graph.initializer}
    inputs = [i for i in graph.input if i.name not in weights]
    if len(inputs) != 1 or len(graph.output) != 1:
        raise InvalidArgument(f"a model asset has one input and one output (this one: {len(inputs)} and {len(graph.output)})")
    dims = [d.dim_value if d.HasField("dim_value") else None for d in inputs[0].type.tensor_type.shape.dim]
    if len(dims) != len(input_shape) + 1 or any(d is not None and d != want for d, want in zip(dims[1:], input_shape)):
        shown = ["batch", *[d if d is not None else "?" for d in dims[1:]]]
        raise InvalidArgument(f"the network takes inputs of shape {shown}, not a batch of {list(input_shape)}")
    out = [d.dim_value if d.HasField("dim_value") else None for d in graph.output[0].type.tensor_type.shape.dim]
    if len(out) != 2 or out[1] is None:
        raise InvalidArgument(f"the network must map a batch of inputs to a batch of output vectors (output shape {out})")
    if output == "sigmoid" and out[1] != 1:
        raise InvalidArgument(f"a sigmoid output needs one output per row, the network gives {out[1]}")
    return int(out[1])


def _supported(graph: Any) -> None:
    import mpc.runtime  # noqa: F401  (CrypTen on modern torch)

    from crypten.nn import module as crypten_modules
    from crypten.nn.onnx_converter import ONNX_TO_CRYPTEN

    known = set(ONNX_TO_CRYPTEN) | {name for name in dir(crypten_modules)}
    unsupported = sorted({n.op_type for n in graph.node if n.op_type not in known})
    if unsupported:
        raise InvalidArgument(f"CrypTen does not support the ONNX operator(s) {', '.join(unsupported)}")
    for node in graph.node:
        if node.op_type == "Constant":
            value = next((a.t for a in node.attribute if a.name == "value"), None)
            if value is not None and value.data_type in _FLOAT_TYPES and math.prod(value.dims) > MAX_CONSTANT_VALUES:
                raise InvalidArgument(f"Constant node {node.name or node.output[0]!r} holds {math.prod(value.dims)} "
                                      "values: weights must be initializers (Constant values are public to the job)")


def crypten_module(data: bytes) -> Any:
    """The ONNX network as a CrypTen module, not encrypted."""
    import mpc.runtime  # noqa: F401  (CrypTen on modern torch)

    import crypten.nn

    try:
        return crypten.nn.from_onnx(io.BytesIO(data))
    except (ValueError, KeyError, AssertionError, TypeError, NotImplementedError) as err:
        raise InvalidArgument(f"CrypTen cannot build this network: {err}") from None


def skeleton(data: bytes) -> bytes:
    """The same network with every initializer zeroed: what the other parties build."""
    import onnx
    from onnx import numpy_helper

    model = onnx.load_model_from_string(data)
    for index, initializer in enumerate(model.graph.initializer):
        zeros = np.zeros_like(numpy_helper.to_array(initializer))
        model.graph.initializer[index].CopyFrom(numpy_helper.from_array(zeros, initializer.name))
    return model.SerializeToString()
