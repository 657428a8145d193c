"""The tables ``fastinfluence score`` writes: the scores (the full matrix, top-k, self-influence),
each line with the row numbers, ids, labels and predictions of its rows, and the --report."""

from __future__ import annotations

import numpy as np

from ..influence import TopK
from .io import require

__all__ = [
    "BLOCK_BYTES",
    "full_matrix",
    "top_k_table",
    "self_influence_table",
    "row_table",
    "describe_rows",
    "model_name",
    "report",
]

#: Target size (bytes) of one block of scores computed at a time.
BLOCK_BYTES = 64 * 2**20


def _block_size(n_rows, bytes_per_column=8):
    return max(1, int(BLOCK_BYTES // max(1, n_rows * bytes_per_column)))


def _blocks(total, size):
    for start in range(0, total, size):
        yield start, min(total, start + size)


def _row_block(data, start, stop):
    """Rows start..stop-1 of a DataFrame, Series or array."""
    return data.iloc[start:stop] if hasattr(data, "iloc") else data[start:stop]


def full_matrix(inf, X_test, y_test, bar=None):
    """I_up,loss for every (training row, test row) as an (n, m) array, in blocks of test rows."""
    n, m = inf.n_samples_, X_test.shape[0]
    scores = np.empty((n, m))
    for start, stop in _blocks(m, _block_size(n)):
        block = inf.loss(_row_block(X_test, start, stop), _row_block(y_test, start, stop))
        scores[:, start:stop] = np.asarray(block)  # a DataFrame when the training X was one
        if bar is not None:
            bar.update(stop - start)
    return scores


def top_k_table(inf, X_test, y_test, k, bar=None):
    """The tidy table of :meth:`TopK.to_frame <fastinfluence.influence.TopK.to_frame>`: test_row, rank,
    train_row, score, kind, for the k most helpful and k most harmful training rows of each test row.

    ``Influence.top_k`` streams over X in O(m k) memory and caps k at the number of
    training rows; fitted on a frame, it gives the table itself, labelled with the
    frames' rows (numbered from 0 for the tables ``read_table`` reads).
    """
    result = inf.top_k(X_test, y_test, k=k)
    if bar is not None:
        bar.update(X_test.shape[0])
    return result.to_frame() if isinstance(result, TopK) else result


def self_influence_table(inf, bar=None):
    """DataFrame (train_row, self_influence), most negative first; computed in row blocks."""
    pd = require("pandas")
    n = inf.n_samples_
    values = np.empty(n)
    for start, stop in _blocks(n, 2**16):
        values[start:stop] = np.asarray(inf.self_influence(indices=np.arange(start, stop)))
        if bar is not None:
            bar.update(stop - start)
    order = np.argsort(values, kind="stable")
    return pd.DataFrame({"train_row": order, "self_influence": values[order]})


def row_table(prefix, frame, selection, predictions):
    """``PREFIX_row, [PREFIX_id], PREFIX_label, PREFIX_prediction`` of every row of ``frame``."""
    pd = require("pandas")
    columns = {f"{prefix}_row": np.arange(len(frame))}
    if selection.id_column is not None:
        columns[f"{prefix}_id"] = frame[selection.id_column].reset_index(drop=True)
    columns[f"{prefix}_label"] = frame[selection.target].reset_index(drop=True)
    columns[f"{prefix}_prediction"] = np.asarray(predictions)
    return pd.DataFrame(columns)


def _rows_of(table, rows, key):
    """The rows of a row table at the positions in ``table[key]``, numbered as ``table``."""
    return rows.iloc[table[key].to_numpy()].reset_index(drop=True)


def describe_rows(tables, train_rows, test_rows):
    """The score tables with the ids, labels and predictions of the rows each line is about."""
    pd = require("pandas")
    described = []
    for kind, table in tables:
        if kind == "matrix":
            described += [pd.concat([train_rows, table.drop(columns="train_row")], axis=1), test_rows]
        elif kind == "top_k":
            parts = [
                _rows_of(table, test_rows, "test_row"),
                table[["rank"]],
                _rows_of(table, train_rows, "train_row"),
                table[["score", "kind"]],
            ]
            described.append(pd.concat(parts, axis=1))
        else:
            described.append(
                pd.concat([_rows_of(table, train_rows, "train_row"), table[["self_influence"]]], axis=1)
            )
    return described


def model_name(args, model):
    """The model a run fits: --model, or multinomial where logistic met more than two classes."""
    return "multinomial" if model.loss.name == "multinomial" else args.model


def _plain_list(values):
    return [v.item() if isinstance(v, np.generic) else v for v in np.asarray(values).tolist()]


def report(args, data, model, outputs, certificate=None):
    """The --report: what was read, how the columns were encoded, the model and its fit, and the
    accuracy certificate of --validate (``"validation"``, None without it)."""
    from .. import __version__

    names = data.encoding.names
    theta = np.asarray(model.theta_).reshape(model.n_blocks, -1)
    coefficients = {"model_columns": names + ([] if args.no_intercept else ["intercept"])}
    if model.n_blocks == 1:
        coefficients["values"] = theta[0].tolist()
    else:
        coefficients["values_by_class"] = {str(c): row.tolist() for c, row in zip(model.classes_, theta)}
    return {
        "fastinfluence": __version__,
        "train": {"file": args.train, "rows": int(data.X.shape[0])},
        "test": {"file": args.test, "rows": int(data.X_test.shape[0])},
        "target": args.target,
        "id_column": data.selection.id_column,
        "not_features": data.selection.ignored,
        "encoding": data.encoding.as_dict(),
        "model": {
            "model": model_name(args, model),
            "l2": args.l2,
            "fit_intercept": not args.no_intercept,
            "damping": args.damping,
            "classes": _plain_list(model.classes_) if hasattr(model, "classes_") else None,
            "converged": model.converged_,
            "newton_iterations": model.n_iter_,
            "gradient_norm": model.grad_norm_,
            "objective": model.objective_,
        },
        # in units of the model columns: (x - center) / scale for standardised numeric columns
        "coefficients": coefficients,
        "outputs": [path for path, _, fmt in outputs if fmt != "json"],
        "validation": None if certificate is None else validation_report(certificate),
    }


def validation_report(certificate):
    """The certificate as JSON: the target, the training rows refitted (row numbers) and their
    kind, and the figures of each estimate over all of them and over each kind."""

    def plain(figures):
        return {
            name: value if isinstance(value, int) else (float(value) if np.isfinite(value) else None)
            for name, value in figures.items()
        }

    return {
        "target": certificate.target,
        "seed": certificate.random_state,
        "train_rows": [int(i) for i in certificate.rows],
        "kinds": [str(kind) for kind in certificate.kind],
        "columns": int(certificate.refit.shape[1]),
        "largest_refit_change": float(np.max(np.abs(certificate.refit))),
        "seconds_refits": certificate.seconds_refits,
        "estimates": {method: plain(figures) for method, figures in certificate.metrics.items()},
        "estimates_by_kind": {
            kind: {method: plain(figures) for method, figures in by_kind.items()}
            for kind, by_kind in certificate.metrics_by_kind.items()
        },
    }
