"""One BLAS thread in the service process.

Why: numpy's OpenBLAS starts one thread per core for every product it computes, and its idle threads
spin after each one. The service already runs requests' pieces side by side in its worker pool (a
`/ground` answer resizes one heat map per finding, each a (H, 14) x (14, W) product), so a threaded BLAS
under each piece put several threads on every core: fifteen heat maps took 174 ms on four workers
against 145 ms one after another on a 2-core host, and 98 ms once BLAS ran one thread per call. The
spinning threads also took the cores from ONNX Runtime's own pool: a `classify_model` run at 2 threads
took 31.7 ms right after such a product against 16.6 ms alone, and 16.2 ms with one BLAS thread
(docs/benchmarks.md, "Postprocessing"). ONNX Runtime's thread counts are not touched by this cap.
"""

from __future__ import annotations

from threadpoolctl import threadpool_limits

__all__ = ["limit_blas_threads"]


def limit_blas_threads(threads: int = 1) -> None:
    """Cap every BLAS library loaded in this process (OpenBLAS, MKL, BLIS) at `threads` per call, for
    the rest of the process's life."""
    threadpool_limits(limits=threads, user_api="blas")

