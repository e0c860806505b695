"""How many compute threads a process may use: OMP_NUM_THREADS, which torch obeys and llama.cpp is given."""
from __future__ import annotations

import os


def compute_threads() -> int | None:
    """The compute threads a process may use, from OMP_NUM_THREADS (torch obeys it by itself; llama.cpp does not,
    so its loads and llama-server get it passed): None when unset, and llama.cpp picks as it does."""
    value = os.environ.get("OMP_NUM_THREADS", "")
    return int(value) if value.isdigit() and int(value) > 0 else None



def llama_thread_args() -> dict:
    """llama-cpp-python's Llama(...) thread arguments under compute_threads(): generation and prompt batches."""
    threads = compute_threads()
    return {"n_threads": threads, "n_threads_batch": threads} if threads else {}
