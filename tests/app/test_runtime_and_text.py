"""ONNX Runtime wrapper (providers, warm-up, shapes) and the free-text query encoder."""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

import numpy as np
import onnxruntime as ort
import pytest

from app.contract.bundle import load_bundle
from app.contract.graphs import CLASSIFY_GRAPH, ENDPOINT_OUTPUTS, FULL_GRAPH, GROUND_GRAPH, choose_graph
from app.runtime import (
    CPU,
    CUDA,
    ENV_ALLOCATORS_KEY,
    SPINNING_KEY,
    ModelOutputs,
    OrtImageModel,
    arena_of,
    select_providers,
    session_options,
    warm_up,
)
from app.textquery import TextQueryEncoder


def test_select_providers() -> None:
    assert select_providers("auto", [CUDA, CPU]) == [CUDA, CPU]
    assert select_providers("auto", [CPU]) == [CPU]
    assert select_providers("cpu", [CUDA, CPU]) == [CPU]
    with pytest.raises(RuntimeError, match="CUDAExecutionProvider"):
        select_providers("cuda", [CPU])


def test_runner_shapes_and_warm_up(tiny_bundle: Path) -> None:
    bundle = load_bundle(tiny_bundle)
    runner = OrtImageModel(bundle, device="cpu", intra_op_threads=1)
    assert runner.provider == CPU
    images = np.zeros((3, 3, 64, 64), np.float32)  # (B, 3, S, S)
    extra = np.concatenate([bundle.pathology_queries, bundle.pathology_queries[:2]])  # (77, T)
    out = runner.run(images, extra, bundle.anatomy_queries)
    assert out.pathology_maps is not None and out.anatomy_probs is not None
    assert out.segmentation_logits is not None
    assert out.pathology_probs.shape == (3, 77) and out.pathology_maps.shape == (3, 77, 8, 8)
    assert out.anatomy_probs.shape == (3, 51) and out.segmentation_logits.shape == (3, 5, 64, 64)
    assert np.allclose(out.pathology_maps.sum(axis=(2, 3)), 1.0, atol=1e-4)  # softmax attention
    assert sorted(warm_up(runner, bundle, [1, 2, 4])) == [1, 2, 4]


def test_thread_spinning_is_off_unless_asked_and_leaves_outputs_alone(tiny_bundle: Path) -> None:
    assert session_options(1).get_session_config_entry(SPINNING_KEY) == "0"
    assert session_options(1, allow_spinning=True).get_session_config_entry(SPINNING_KEY) == "1"
    bundle = load_bundle(tiny_bundle)
    image = np.random.default_rng(3).standard_normal((1, 3, bundle.image_size, bundle.image_size))
    image = image.astype(np.float32)
    quiet = OrtImageModel(bundle, device="cpu", intra_op_threads=1)
    spinning = OrtImageModel(bundle, device="cpu", intra_op_threads=1, allow_spinning=True)
    a = quiet.run(image, bundle.pathology_queries, bundle.anatomy_queries)
    b = spinning.run(image, bundle.pathology_queries, bundle.anatomy_queries)
    np.testing.assert_array_equal(a.pathology_probs, b.pathology_probs)


def test_graphs_share_one_arena_except_a_full_graph_left_to_segment_alone() -> None:
    assert session_options(1).enable_cpu_mem_arena
    assert not session_options(1, arena="none").enable_cpu_mem_arena
    assert session_options(1, arena="shared").get_session_config_entry(ENV_ALLOCATORS_KEY) == "1"
    three = (FULL_GRAPH, CLASSIFY_GRAPH, GROUND_GRAPH)
    assert arena_of(FULL_GRAPH, three) == "none"
    assert arena_of(GROUND_GRAPH, three) == arena_of(CLASSIFY_GRAPH, three) == "shared"
    assert arena_of(FULL_GRAPH, (FULL_GRAPH, CLASSIFY_GRAPH)) == "shared"  # it also serves /ground there


def test_io_binding_path_gives_identical_outputs_on_cpu(tiny_bundle: Path) -> None:
    bundle = load_bundle(tiny_bundle)
    plain = OrtImageModel(bundle, device="cpu", intra_op_threads=1)
    bound = OrtImageModel(bundle, device="cpu", intra_op_threads=1, io_binding=True)
    assert not plain.io_binding and bound.io_binding  # default: on with CUDA only
    images = np.random.default_rng(0).normal(size=(2, 3, 64, 64)).astype(np.float32)  # (B, 3, S, S)
    for outputs in ENDPOINT_OUTPUTS.values():
        want = plain.run(images, bundle.pathology_queries, bundle.anatomy_queries, outputs=outputs)
        got = bound.run(images, bundle.pathology_queries, bundle.anatomy_queries, outputs=outputs)
        for name in ModelOutputs.__dataclass_fields__:
            expected, actual = getattr(want, name), getattr(got, name)
            assert (expected is None) == (actual is None), name
            if expected is not None:
                assert actual.dtype == expected.dtype and np.array_equal(actual, expected), name


@pytest.mark.skipif(
    CUDA not in ort.get_available_providers(), reason="onnxruntime offers no CUDAExecutionProvider"
)
def test_cuda_runs_stored_precision_through_io_binding(tiny_bundle: Path) -> None:
    bundle = load_bundle(tiny_bundle)
    cpu = OrtImageModel(bundle, device="cpu", intra_op_threads=1)
    cuda = OrtImageModel(bundle, device="cuda", precision="auto")
    assert cuda.provider == CUDA and cuda.io_binding
    assert set(cuda.precisions.values()) <= {"fp32", "fp16"}  # as stored, never upcast on the GPU
    warm_up(cuda, bundle, [1, 2])
    images = np.random.default_rng(1).normal(size=(2, 3, 64, 64)).astype(np.float32)  # (B, 3, S, S)
    want = cpu.run(images, bundle.pathology_queries, bundle.anatomy_queries)
    got = cuda.run(images, bundle.pathology_queries, bundle.anatomy_queries)
    assert np.allclose(got.pathology_probs, want.pathology_probs, atol=1e-2)


def test_warm_up_runs_every_bucket_through_every_graph(tiny_bundle: Path) -> None:
    bundle = load_bundle(tiny_bundle)
    runner = OrtImageModel(bundle, device="cpu", intra_op_threads=1)
    seen: list[tuple[str, int]] = []

    class Recording:
        provider = CPU

        def run(
            self, images: np.ndarray, pq: np.ndarray, aq: np.ndarray, outputs: Iterable[str] = ()
        ) -> ModelOutputs:
            seen.append((choose_graph(outputs, runner.graphs), images.shape[0]))
            return runner.run(images, pq, aq, outputs=outputs)

    warm_up(Recording(), bundle, [1, 4])
    assert set(runner.graphs) == {"image_model", "classify_model"}
    assert {(graph, size) for graph in runner.graphs for size in (1, 4)} <= set(seen)


def test_text_encoder_matches_book_and_caches(tiny_bundle: Path) -> None:
    bundle = load_bundle(tiny_bundle)
    assert bundle.text_encoder is not None
    encoder = TextQueryEncoder(bundle.text_encoder, cache_size=2, intra_op_threads=1)
    index = bundle.pathology_names.index("effusion")
    vectors = encoder.encode(["Effusion", "left lower lobe", "Effusion"])  # (3, T)
    assert vectors.shape == (3, 16)
    assert np.allclose(vectors[0], bundle.pathology_queries[index], atol=1e-5)  # same function as the book
    assert np.allclose(vectors[0], vectors[2]) and not np.allclose(vectors[0], vectors[1])
    assert np.allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)
    encoder.encode(["a", "b", "c"])  # evicts: the cache keeps at most two texts
    assert encoder._cached("Effusion") is None and encoder._cached("c") is not None


def test_real_text_encoder_is_padding_invariant() -> None:
    """The shipped MiniLM tokenizer pads to 128 by default; pads must not enter the mean pooling."""
    from app.contract.bundle import TextEncoderBundle
    from app.contract.locations import REPO_ROOT

    root = REPO_ROOT / "model_store" / "text-encoders" / "all-minilm-l6-v2" / "1"
    if not (root / "text_encoder.onnx").is_file():
        pytest.skip("model_store/text-encoders/all-minilm-l6-v2/1 is not present")
    bundle = TextEncoderBundle(root=root, name="all-minilm-l6-v2", version="1", dim=384, max_length=64)
    import onnxruntime as ort
    from tokenizers import Tokenizer

    batched = TextQueryEncoder(bundle, cache_size=0, intra_op_threads=1).encode(
        ["pleural effusion", "patchy opacity in the left lower lobe " * 3]
    )  # (2, 384)
    tokenizer = Tokenizer.from_file(str(bundle.tokenizer_path))
    tokenizer.no_padding()
    ids = np.array([tokenizer.encode("pleural effusion").ids], dtype=np.int64)  # (1, L) with no pads
    session = ort.InferenceSession(str(bundle.graph_path), providers=["CPUExecutionProvider"])
    (reference,) = session.run(["embeddings"], {"input_ids": ids, "attention_mask": np.ones_like(ids)})
    assert batched.shape == (2, 384)
    assert np.allclose(batched[0], reference[0], atol=2e-3)  # fp16 graph: loose tolerance
    assert np.allclose(np.linalg.norm(batched, axis=1), 1.0, atol=2e-3)


def test_one_images_outputs_keep_its_rows_and_drop_the_batch_axis() -> None:
    probs = np.arange(2 * 5, dtype=np.float32).reshape(2, 5)  # (B, Qp + sum Qc)
    maps = np.arange(2 * 5 * 3 * 3, dtype=np.float32).reshape(2, 5, 3, 3)
    seg = np.ones((2, 4, 8, 8), dtype=np.float32)
    batch = ModelOutputs(probs, maps, None, None, seg)
    rows = np.r_[0:3, 4:5]  # the book's three rows and this image's one free-text row
    item = batch.item(1, rows)
    assert item.pathology_probs.tolist() == [5.0, 6.0, 7.0, 9.0]
    assert item.pathology_maps is not None and item.pathology_maps.shape == (4, 3, 3)
    assert np.array_equal(item.pathology_maps[3], maps[1, 4])
    assert item.anatomy_probs is None and item.anatomy_maps is None  # not computed stays absent
    assert item.segmentation_logits is not None and item.segmentation_logits.shape == (4, 8, 8)
