"""The argument parser of ``fastinfluence``: its commands, options and help texts."""

from __future__ import annotations

import argparse

from .errors import PROG, InputError

__all__ = [
    "build_parser",
    "MODEL_NAMES",
    "CLASSIFIER_NAMES",
    "DEFAULT_MAX_MATRIX_MB",
    "DEFAULT_MAX_CATEGORIES",
]

#: Memory (MiB) the full I_up,loss matrix may take before ``score`` refuses and points to --top-k.
DEFAULT_MAX_MATRIX_MB = 1024
#: Most distinct values a column may have to be one-hot encoded (a US state column has 51).
DEFAULT_MAX_CATEGORIES = 100

MODEL_NAMES = ("logistic", "multinomial", "linear", "poisson", "smooth-hinge")
CLASSIFIER_NAMES = ("logistic", "multinomial", "smooth-hinge")


class _Parser(argparse.ArgumentParser):
    """argparse with one-line usage errors (exit status 2) instead of the usage block."""

    def error(self, message):
        raise InputError(f"{message} (see '{self.prog} --help')")


def _formatter(prog):
    return argparse.RawDescriptionHelpFormatter(prog, max_help_position=30, width=100)


MAIN_DESCRIPTION = """\
Which training rows made my model say this? fastinfluence computes exact influence
functions (Koh & Liang, 2017) of convex linear models: for every training row i and
test row j, the score

    I_up,loss(i, j) = -grad loss(test j)^T  H^-1  grad loss(train i)

says how the loss on test row j changes when training row i gets a little more weight.
Negative = helpful (row i lowers the test loss), positive = harmful. Removing row i
changes the test loss by about -score / n_train.

Start with 'fastinfluence demo'; run 'fastinfluence COMMAND --help' for the options
of a command."""

MAIN_EPILOG = """\
examples:
  fastinfluence demo
  fastinfluence score --train train.csv --test test.csv --target label --out scores.csv
  fastinfluence score --train train.parquet --test test.parquet --target label \\
      --top-k 10 --self-influence --out top10.parquet

exit status: 0 success, 2 bad input or usage, 1 unexpected failure, 130 interrupted (Ctrl-C),
143 terminated (SIGTERM)."""

DEMO_DESCRIPTION = """\
Fit logistic regression on the breast cancer data that ships with scikit-learn (first 455
rows train, last 114 test; no network needed) and print:
  1. the fit (Newton iterations, gradient norm, accuracy);
  2. for misclassified test points, their most helpful and most harmful training points;
  3. how well the leave-one-out estimates match exact refits (Pearson correlation);
  4. the training points with the largest self-influence (mislabel candidates);
  5. a mislabel-detection experiment: 10% of the labels flipped, found by self-influence;
  6. an accuracy certificate: exact refits of the 10 rows of largest estimated effect and of
     20 at random, against both estimates (see --validate of the score command).
PNG plots go into --out-dir (needs matplotlib: pip install matplotlib, or the plot extra:
pip install ".[plot]" in a fastinfluence source checkout)."""

DEMO_EPILOG = """\
examples:
  fastinfluence demo
  fastinfluence demo --out-dir /tmp/influence-plots --seed 1
  fastinfluence demo --no-plots"""

SCORE_DESCRIPTION = """\
Fit a model on --train and score every training row against every test row of --test.
Formats follow the file extensions: .csv, .csv.gz, .parquet or .pq. Row numbers count data
rows from 0, in file order (the header is not a row).

columns: --target is the label, --id-column the row ids (carried into the outputs, never a
feature); every other column is a feature, unless --features names the features or --drop
removes some. --test needs the columns the run uses (target included), and none that --train
lacks. Each feature column becomes model columns by its type:
  numeric            standardised (see below), or as it is with --no-standardize
  boolean            0/1
  text, categorical  one-hot: a 0/1 column COLUMN=VALUE per value seen in --train, and
  (or --categorical) COLUMN=<missing> when --train has missing values there; a --test value
                     not seen in --train gets 0 in all of them (with a warning)
Missing numbers are an error (fill or drop them first). A feature column named like a row id
(id, ID, patient_id, customerId, index, Unnamed: 0) is refused unless --features names it; one
holding a different whole number in every row is used, with a warning. Without --quiet, stderr
says how each column was encoded; --report FILE.json records it, with the coefficients.

standardising (--standardize, the default): each numeric column becomes (x - mean) / sd with
the mean and standard deviation of --train (with --no-intercept, x / its root mean square:
centring would add an intercept). Why the default: the penalty (l2/2) ||w||^2 is not unit-free.
On raw columns it penalises a coefficient per dollar unlike one per cent, so the model and its
scores would depend on the units the file happens to use; columns far from 0 relative to their
spread (years, timestamps) make the Hessian nearly singular, and the multinomial fit is
sensitive to scale. The scores are in units of the loss, which standardising leaves alone: it
changes them only through --l2 and --damping, which then act on coefficients per standard
deviation (with --l2 0, --damping 0 and an intercept, both give the same scores). Use
--no-standardize to score the model fitted on the raw columns, e.g. to compare with the Python
API called on them (where pert_loss and loo_params are per unit of the columns the model saw).

what --out holds (each row of every table carries its row number train_row / test_row, its id
train_id / test_id with --id-column, its true label train_label / test_label and the model's
prediction train_prediction / test_prediction: the predicted class, or mean):
  (default)          the full I_up,loss matrix, one row per training row: train_row, [train_id],
                     train_label, train_prediction, then one column per test row (test_0,
                     test_1, ...). The test rows' ids, labels and predictions go to a second
                     file beside --out: scores.csv -> scores.test_rows.csv.
                     Refused above --max-matrix-mb: use --top-k then.
  --top-k K          a tidy table test_row, [test_id], test_label, test_prediction, rank,
                     train_row, [train_id], train_label, train_prediction, score, kind: for each
                     test row its K most helpful (kind=helpful, most negative score first) and
                     K most harmful (kind=harmful, most positive first) training rows (K is
                     capped at the number of training rows; the sign of score is what counts
                     when fewer than K rows help or harm).
  --self-influence   a table train_row, [train_id], train_label, train_prediction,
                     self_influence = I_up,loss(i, i) <= 0, most negative first: the rows the
                     model bends most to fit (check their labels first). With --top-k as well,
                     the self-influence goes to a second file beside --out:
                     scores.csv -> scores.self_influence.csv.

labels: logistic and smooth-hinge take two classes (0/1, -1/+1, true/false or two names);
logistic with more than two classes (names or whole numbers) and multinomial fit a softmax over
them; poisson takes counts >= 0 (not all 0 with an intercept); linear takes any number.
--train needs at least 2 rows. The objective is (1/n) sum_i loss_i + (l2/2) ||w||^2.

accuracy (--validate N): refit the model exactly without each of the N training rows of largest
estimated effect on a test loss and without N more drawn at random (seeded by --validate-seed),
and compare the first-order and Newton estimates of the change of the test losses with the refits:
Pearson and Spearman correlation, largest error and that error relative to the largest change.
It costs 2N fits; stderr shows the result, and --report records it (with the rows checked). The
test loss of every test row is the target when the n_train x n_test matrix fits --max-matrix-mb,
else the mean test loss.

partial outputs: each output FILE is written to FILE.fastinfluence-partial-HOST-PID beside it and
renamed to FILE once every output is complete. A run that fails, is interrupted (Ctrl-C) or is
terminated (SIGTERM) removes it; a run killed outright (SIGKILL, out of memory) leaves it behind,
and the next run with the same --out on the same host removes it once process PID has ended
(or delete it yourself)."""

SCORE_EPILOG = """\
examples:
  # the full matrix: one row per training row, one column per test row
  fastinfluence score --train train.csv --test test.csv --target label --out scores.csv
  # -> scores.csv and scores.test_rows.csv

  # a raw file: text columns one-hot encoded, numbers standardised, rows named by their id
  fastinfluence score --train patients.csv --test new_patients.csv --target diagnosis \\
      --id-column patient_id --drop notes --top-k 5 --out top5.csv --report top5.json

  # the 10 most helpful and harmful training rows per test row, plus self-influence
  fastinfluence score --train train.parquet --test test.parquet --target label \\
      --model logistic --l2 1e-3 --top-k 10 --self-influence --out top10.parquet
  # -> top10.parquet and top10.self_influence.parquet

exit status: 0 success, 2 bad input or usage (no output written), 1 unexpected failure,
130 interrupted (Ctrl-C), 143 terminated (SIGTERM); neither leaves a partial output."""


def build_parser() -> argparse.ArgumentParser:
    """The parser of every command; ``args.command`` names the command given (None without one)."""
    from .. import __version__

    parser = _Parser(prog=PROG, description=MAIN_DESCRIPTION, epilog=MAIN_EPILOG, formatter_class=_formatter)
    parser.add_argument("--version", action="version", version=f"{PROG} {__version__}")
    common = _Parser(add_help=False)
    common.add_argument(
        "--quiet", action="store_true", help="print no progress or report (errors still go to stderr)"
    )
    common.add_argument("--verbose", action="store_true", help="show the traceback of unexpected failures")
    commands = parser.add_subparsers(
        dest="command", title="commands", metavar="COMMAND", parser_class=_Parser
    )

    def add_command(name, summary, description, epilog):
        return commands.add_parser(
            name,
            parents=[common],
            help=summary,
            description=description,
            epilog=epilog,
            formatter_class=_formatter,
        )

    demo = add_command(
        "demo",
        "run everything on bundled data (breast cancer) and explain the results",
        DEMO_DESCRIPTION,
        DEMO_EPILOG,
    )
    _add_demo_options(demo)
    score = add_command(
        "score", "influence scores for your own CSV or Parquet files", SCORE_DESCRIPTION, SCORE_EPILOG
    )
    _add_score_options(score)
    return parser


def _add_demo_options(demo):
    demo.add_argument(
        "--out-dir",
        default="fastinfluence-demo",
        metavar="DIR",
        help="folder for the PNG plots, created if needed (default: ./fastinfluence-demo)",
    )
    demo.add_argument("--no-plots", action="store_true", help="write no plots")
    demo.add_argument(
        "--seed", type=int, default=0, help="seed of the random sample and label flips (default: 0)"
    )


def _add_score_options(score):
    files = score.add_argument_group("data")
    files.add_argument(
        "--train", required=True, metavar="FILE", help="training rows (.csv, .csv.gz, .parquet, .pq)"
    )
    files.add_argument(
        "--test",
        required=True,
        metavar="FILE",
        help="test rows, with the columns of --train that the run uses",
    )
    files.add_argument("--target", required=True, metavar="COLUMN", help="name of the label column")
    files.add_argument(
        "--out",
        required=True,
        metavar="FILE",
        help="output file; its extension picks CSV or Parquet; replaced if it exists",
    )
    _add_column_options(score)
    model = score.add_argument_group("model")
    model.add_argument(
        "--model",
        choices=MODEL_NAMES,
        default="logistic",
        help=(
            "loss: logistic (binary; multinomial when the target has more than two classes), "
            "multinomial (softmax over the classes), linear (squared), poisson or smooth-hinge "
            "(default: logistic)"
        ),
    )
    model.add_argument(
        "--l2",
        type=float,
        default=1e-3,
        help="L2 penalty on the coefficients of the model columns (standardised by default) (default: 1e-3)",
    )
    model.add_argument(
        "--t",
        type=float,
        default=None,
        help="temperature of the smooth hinge, smooth-hinge only (default: 0.1)",
    )
    model.add_argument("--no-intercept", action="store_true", help="fit without an intercept")
    model.add_argument(
        "--max-iter", type=int, default=100, help="most Newton iterations of the fit (default: 100)"
    )
    model.add_argument(
        "--damping",
        type=float,
        default=0.0,
        help="added to the Hessian's diagonal when it is (near) singular (default: 0)",
    )
    what = score.add_argument_group("output")
    what.add_argument(
        "--top-k",
        type=int,
        default=None,
        metavar="K",
        help="keep the K most helpful and K most harmful training rows per test row",
    )
    what.add_argument(
        "--self-influence",
        action="store_true",
        help="write the self-influence of every training row (see above)",
    )
    what.add_argument(
        "--max-matrix-mb",
        type=float,
        default=DEFAULT_MAX_MATRIX_MB,
        metavar="MB",
        help=f"largest full matrix to write, in MiB (default: {DEFAULT_MAX_MATRIX_MB})",
    )
    what.add_argument(
        "--report",
        metavar="FILE.json",
        default=None,
        help=(
            "also write a JSON description of the run: the columns and how each was encoded "
            "(levels, mean and scale), the model, its fit, and the coefficient of each model column"
        ),
    )
    what.add_argument(
        "--validate",
        type=int,
        default=None,
        metavar="N",
        help="check the estimates against exact refits of 2N training rows (see 'accuracy' above)",
    )
    what.add_argument(
        "--validate-seed",
        type=int,
        default=0,
        metavar="SEED",
        help="seed of the random rows --validate refits (default: 0)",
    )
    score.add_argument("--n-jobs", type=int, default=None, metavar="N", help="threads (default: every core)")


def _add_column_options(score):
    columns = score.add_argument_group("columns")
    columns.add_argument(
        "--id-column",
        metavar="COLUMN",
        default=None,
        help="row ids, a column of both files: beside the row numbers in every output; not a feature",
    )
    which = columns.add_mutually_exclusive_group()
    which.add_argument(
        "--features",
        nargs="+",
        action="extend",
        metavar="COLUMN",
        help="the feature columns (default: every column but --target, --id-column and --drop)",
    )
    which.add_argument(
        "--drop", nargs="+", action="extend", metavar="COLUMN", help="columns that are not features"
    )
    columns.add_argument(
        "--categorical",
        nargs="+",
        action="extend",
        metavar="COLUMN",
        help="numeric columns to one-hot encode as categories (text and categorical columns always are)",
    )
    columns.add_argument(
        "--max-categories",
        type=int,
        default=DEFAULT_MAX_CATEGORIES,
        metavar="N",
        help=f"most distinct values of a column to one-hot encode (default: {DEFAULT_MAX_CATEGORIES})",
    )
    columns.add_argument(
        "--standardize",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="standardise the numeric feature columns on --train (default: yes; see 'standardising' above)",
    )
