"""Records and validated write batches.

A write request carries a batch (one journal entry), so the batch — ids, one
float32 matrix, metadata as JSON text, documents — is the unit services pass
around; :class:`Record` is the one-row view for APIs that return single
records (get by id, search results). :class:`ShardHits` is a search's answer
in the same columnar form.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import orjson

from vecraft.shared.common.errors import InvalidRequest
from vecraft.shared.model.validation import (
    validate_document,
    validate_ids,
    validate_metadata,
    validate_optional_list,
    validate_vectors,
)


@dataclass(frozen=True, slots=True)
class Record:
    """One record: id, float32 vector, metadata object (or None), document (or None)."""

    id: str
    vector: np.ndarray
    metadata: dict[str, Any] | None = None
    document: str | None = None


@dataclass(frozen=True, slots=True)
class RecordBatch:
    """Rows of one write: ``vectors`` is (len(ids), dim) float32, metadata as compact JSON text."""

    ids: tuple[str, ...]
    vectors: np.ndarray
    metadata_json: tuple[str | None, ...]
    documents: tuple[str | None, ...]

    @classmethod
    def validate(cls, ids: Sequence[Any], vectors: Any, *,
                 metadata: Sequence[Mapping[str, Any] | None] | None = None,
                 documents: Sequence[str | None] | None = None,
                 dim: int | None = None) -> RecordBatch:
        """Validate a request's columns into a batch.

        Raises InvalidRequest / PayloadTooLarge as the ``validate_*`` functions
        do; ``vectors`` must have one row per id, ``metadata`` / ``documents``
        (when given) one entry per id.
        """
        id_list = validate_ids(ids)
        return cls._of(id_list, validate_vectors(vectors, dim), metadata, documents)

    @classmethod
    def with_vectors(cls, ids: Sequence[Any], matrix: np.ndarray, *,
                     metadata: Sequence[Mapping[str, Any] | None] | None = None,
                     documents: Sequence[str | None] | None = None) -> RecordBatch:
        """Like :meth:`validate` for vectors that :func:`validate_vectors` already returned.

        For a caller that needed the rows before the batch (the gateway counts them to
        generate ids): the vectors are validated once, not twice.
        """
        return cls._of(validate_ids(ids), matrix, metadata, documents)

    @classmethod
    def _of(cls, id_list: list[str], matrix: np.ndarray, metadata: Sequence[Mapping[str, Any] | None] | None,
            documents: Sequence[str | None] | None) -> RecordBatch:
        if matrix.shape[0] != len(id_list):
            raise InvalidRequest(f"vectors has {matrix.shape[0]} rows but there are {len(id_list)} "
                                 f"ids; give one vector per id")
        metas = validate_optional_list(metadata, len(id_list), "metadata")
        docs = validate_optional_list(documents, len(id_list), "documents")
        return cls(
            ids=tuple(id_list), vectors=matrix,
            metadata_json=tuple(validate_metadata(m, field=f"metadata[{i}]") for i, m in enumerate(metas)),
            documents=tuple(validate_document(d, field=f"documents[{i}]") for i, d in enumerate(docs)))

    def __len__(self) -> int:
        return len(self.ids)

    @property
    def dim(self) -> int:
        return int(self.vectors.shape[1])

    def __iter__(self) -> Iterator[Record]:
        for i, record_id in enumerate(self.ids):
            meta = self.metadata_json[i]
            yield Record(record_id, self.vectors[i], orjson.loads(meta) if meta is not None else None,
                         self.documents[i])



@dataclass(frozen=True, slots=True)
class ShardHits:
    """Search hits as columns: ids, scores (float32, higher better), metadata JSON, documents.

    ``documents`` is empty when the hits carry none (a query node's cache holds no documents).
    """

    ids: list[str]
    scores: np.ndarray
    metadata_json: list[str]
    documents: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        if not (len(self.ids) == len(self.scores) == len(self.metadata_json)):
            raise ValueError("ids, scores and metadata_json must have the same length")
        if self.documents and len(self.documents) != len(self.ids):
            raise ValueError("documents must be empty or as long as ids")
