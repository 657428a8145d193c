"""The k most helpful and most harmful training points: the result type and the selection rule.

One rule orders candidates everywhere (the compiled kernel keeps it too): helpful
scores ascending (most negative first), harmful descending, ties to the lower row.
The NumPy backend selects with it over row blocks, the Dask engine merges the
candidates of its chunks with it.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from . import _dataframes as D

__all__ = ["TopK", "best_k", "merge_candidates", "unpack"]


@dataclass(frozen=True)
class TopK:
    """The k most helpful and most harmful training points for each of m test points.

    ``helpful_indices[j]`` are the training rows with the most negative
    I_up,loss on test point j (upweighting them lowers its loss), most helpful
    first, with their scores in ``helpful_scores[j]``; ``harmful_*`` likewise
    for the most positive. All arrays are (m, k); ties go to the lower row.
    """

    helpful_indices: np.ndarray
    helpful_scores: np.ndarray
    harmful_indices: np.ndarray
    harmful_scores: np.ndarray

    def to_frame(
        self, train_labels=None, test_labels=None, *, kinds=("helpful", "harmful"), column="test_row"
    ):
        """The same result as one tidy pandas DataFrame: ``test_row, rank, train_row, score, kind``.

        One row per (test point, kind, rank): for each test point (in order)
        its k most helpful training rows (``kind="helpful"``, rank 1 = most
        negative score), then its k most harmful (``kind="harmful"``, rank 1 =
        most positive). ``train_row`` and ``test_row`` are row numbers, or
        ``train_labels[i]`` and ``test_labels[j]`` when given (a pandas Index
        or any sequence). ``kinds`` names the two kinds (``Influence.top_k_on``
        passes ``("lowers", "raises")`` for targets that are not losses) and
        ``column`` the first column (``"target"`` for targets that are not test
        points). Needs pandas.
        """
        pd = D.require_pandas("TopK.to_frame results")
        m, k = self.helpful_indices.shape
        test_labels = pd.RangeIndex(m) if test_labels is None else pd.Index(test_labels)
        train_labels = None if train_labels is None else pd.Index(train_labels)
        # per test point: k helpful then k harmful, in rank order
        train_positions = np.concatenate([self.helpful_indices, self.harmful_indices], axis=1).ravel()
        scores = np.concatenate([self.helpful_scores, self.harmful_scores], axis=1).ravel()
        test_positions = np.repeat(np.arange(m), 2 * k)
        return pd.DataFrame(
            {
                column: test_labels.take(test_positions),
                "rank": np.tile(np.arange(1, k + 1), 2 * m),
                "train_row": train_positions if train_labels is None else train_labels.take(train_positions),
                "score": scores.astype(np.float64, copy=False),
                "kind": np.tile(np.repeat(np.array(list(kinds), dtype=object), k), m),
            }
        )


def best_k(rows: np.ndarray, scores: np.ndarray, k: int, *, largest: bool) -> tuple[np.ndarray, np.ndarray]:
    """For each of the m rows of the (m, c) candidates: the k smallest scores (``largest=False``,
    the helpful ones) or the k largest, ties to the lower row number. Returns (rows, scores), (m, k)."""
    order = np.lexsort((rows, -scores if largest else scores), axis=1)[:, :k]
    return np.take_along_axis(rows, order, axis=1), np.take_along_axis(scores, order, axis=1)


def merge_candidates(candidates: np.ndarray, k: int) -> np.ndarray:
    """Merge B stacked candidate lists, (B, m, 4, k') packed as (helpful rows, helpful scores,
    harmful rows, harmful scores), into the best k, packed the same way: (m, 4, k). Missing
    entries are row -1 with score +inf (helpful) or -inf (harmful): they sort last."""
    B, m, _, kept = candidates.shape
    merged = np.empty((m, 4, min(k, B * kept)))
    for rows_at, largest in ((0, False), (2, True)):
        rows = np.moveaxis(candidates[:, :, rows_at, :], 0, 1).reshape(m, B * kept)
        scores = np.moveaxis(candidates[:, :, rows_at + 1, :], 0, 1).reshape(m, B * kept)
        merged[:, rows_at], merged[:, rows_at + 1] = best_k(rows, scores, k, largest=largest)
    return merged


def unpack(packed: np.ndarray) -> TopK:
    """The :class:`TopK` of packed (m, 4, k) candidates."""
    return TopK(
        packed[:, 0].astype(np.int64), packed[:, 1].copy(), packed[:, 2].astype(np.int64), packed[:, 3].copy()
    )
