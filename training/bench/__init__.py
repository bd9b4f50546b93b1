"""Speed benchmarks that need torch: the `medslip-bench` command (`cli`), the interleaved comparison of
ONNX Runtime, PyTorch eager, the official architecture, HTTP and decoding (`compare*`), the eager
reference graphs (`eager`), training throughput (`train_speed`) and the side-by-side timing loop they
share (`interleave`). The service-only benchmarks live in `app/bench.py` and `app/bench_decode.py`."""
