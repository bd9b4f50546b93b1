"""Splitting a bundle graph at its query inputs: the two parts, run one after the other, compute what the
whole graph computes; a graph that reads no query is not split."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
from onnx import TensorProto, helper

from app.contract.bundle import load_bundle
from app.contract.graphs import GRAPH_SIGNATURES
from app.graph_precision import fp32_graph_bytes
from app.graph_split import split_at_queries

QUERIES = ("pathology_queries", "anatomy_queries")


def _session(model: onnx.ModelProto) -> ort.InferenceSession:
    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    return ort.InferenceSession(model.SerializeToString(), options, providers=["CPUExecutionProvider"])


def test_the_two_parts_compute_the_whole_graph(tiny_bundle: Path) -> None:
    bundle = load_bundle(tiny_bundle)
    rng = np.random.default_rng(11)
    images = rng.normal(size=(2, 3, bundle.image_size, bundle.image_size)).astype(np.float32)
    feeds = {"image": images, "pathology_queries": bundle.pathology_queries,
             "anatomy_queries": bundle.anatomy_queries}
    for name in bundle.graph_names:
        whole = onnx.load_from_string(fp32_graph_bytes(bundle.graph_path_for(name)))
        split = split_at_queries(whole, "image", QUERIES)
        assert split is not None, name
        image_inputs = {value.name for value in split.image_part.graph.input}
        query_inputs = {value.name for value in split.query_part.graph.input}
        assert image_inputs == {"image"}  # the film-only part never sees a query
        assert set(split.cut) <= query_inputs and query_inputs & set(QUERIES)
        assert {*split.image_outputs, *split.query_outputs} == set(GRAPH_SIGNATURES[name][1])
        used = {key: feeds[key] for key in GRAPH_SIGNATURES[name][0]}
        want = dict(zip((o.name for o in whole.graph.output), _session(whole).run(None, used), strict=True))
        first = _session(split.image_part)
        names = [o.name for o in first.get_outputs()]
        passed = dict(zip(names, first.run(None, {"image": images}), strict=True))
        second = _session(split.query_part)
        values = {**feeds, **passed}
        got = dict(zip((o.name for o in second.get_outputs()),
                       second.run(None, {i.name: values[i.name] for i in second.get_inputs()}), strict=True))
        got.update({key: passed[key] for key in split.image_outputs})
        for key, value in want.items():
            np.testing.assert_allclose(got[key], value, atol=1e-5, err_msg=f"{name}:{key}")


def test_a_graph_that_reads_no_query_is_not_split() -> None:
    image = helper.make_tensor_value_info("image", TensorProto.FLOAT, [1, 3, 4, 4])
    out = helper.make_tensor_value_info("out", TensorProto.FLOAT, [1, 3, 4, 4])
    graph = helper.make_graph([helper.make_node("Relu", ["image"], ["out"])], "film_only", [image], [out])
    assert split_at_queries(helper.make_model(graph), "image", QUERIES) is None
