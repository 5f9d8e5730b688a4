"""EmbeddedEngine: offline code completion with no weights to download."""

from __future__ import annotations

import logging
import pathlib
import platform
import threading
import time
from collections.abc import Sequence

from . import corpus, decode, lexer
from .model import KNModel, train

log = logging.getLogger(__name__)

_TRAIN_LOCK = threading.Lock()
TRAINING_RUNS = 0  # process-wide number of trainings (tests assert on it)


def default_cache_dir() -> pathlib.Path:
    import platformdirs

    return pathlib.Path(platformdirs.user_cache_dir("codesuggest")) / "embedded"


class EmbeddedEngine:
    """Order-6 Kneser-Ney token model over the stdlib + per-request cache model.

    ``complete`` is synchronous and CPU-bound (run it in a thread) and
    deterministic. The model is trained on first use (or by ``ensure_trained``)
    once per process, and its tables are cached on disk under ``cache_dir``.
    """

    name = "embedded"
    model_name = "kn6-stdlib"

    def __init__(self, cache_dir: pathlib.Path | None = None):
        self.cache_dir = pathlib.Path(cache_dir) if cache_dir is not None else default_cache_dir()
        self._model: KNModel | None = None
        self._lock = threading.Lock()
        self.train_runs = 0  # trainings done by this engine
        self.loaded_from_cache = False
        self.train_seconds: float | None = None
        self.load_seconds: float | None = None

    # ------------------------------------------------------------------ setup
    def cache_path(self, tag: str = "stdlib") -> pathlib.Path:
        suffix = "" if tag == "stdlib" else f"-{tag}"
        return self.cache_dir / f"kn6-py{platform.python_version()}{suffix}.npz"

    @staticmethod
    def held_out_files() -> list[pathlib.Path]:
        """Stdlib files never trained on (for quality measurements)."""
        return corpus.held_out_files()

    def ensure_trained(self) -> None:
        """Load the tables from disk, or train and save them. Thread-safe; runs once."""
        if self._model is not None:
            return
        with self._lock:
            if self._model is not None:
                return
            tag, files = corpus.corpus_files()
            path = self.cache_path(tag)
            t0 = time.perf_counter()
            model = self._try_load(path)
            if model is not None:
                self.load_seconds = time.perf_counter() - t0
                self.loaded_from_cache = True
                log.info("embedded model loaded from %s in %.2fs", path, self.load_seconds)
            else:
                model = self._train(files)
                self.train_seconds = time.perf_counter() - t0
                log.info(
                    "embedded model trained on %d %s files in %.1fs",
                    len(files),
                    tag,
                    self.train_seconds,
                )
                try:
                    model.save(path)
                except OSError as exc:  # a read-only cache is not fatal
                    log.warning("could not cache the embedded model at %s: %s", path, exc)
            self._model = model

    @staticmethod
    def _try_load(path: pathlib.Path) -> KNModel | None:
        if not path.is_file():
            return None
        try:
            return KNModel.load(path)
        except Exception as exc:  # corrupt or old format: retrain
            log.warning("ignoring embedded model cache %s: %s", path, exc)
            return None

    def _train(self, files: Sequence[pathlib.Path]) -> KNModel:
        global TRAINING_RUNS
        streams = []
        for p in files:
            text = corpus.read_source(p)
            if text:
                streams.append(lexer.lex(text).tokens)
        with _TRAIN_LOCK:
            TRAINING_RUNS += 1
        self.train_runs += 1
        return train(streams)

    # -------------------------------------------------------------- complete
    def complete(
        self,
        prefix: str,
        suffix: str,
        *,
        language: str = "python",
        context: Sequence[str] = (),
        mode: str = "auto",
        max_tokens: int = 48,
    ) -> str:
        """Text to insert at the cursor ("" = abstain). Trains lazily if needed."""
        self.ensure_trained()
        return decode.complete(
            self._model,
            prefix,
            suffix,
            language=language,
            context=list(context),
            mode=mode,
            max_tokens=max_tokens,
        )
