"""Your own table: ``data=csv data.path=table.csv data.target=<column>``.

pandas reads the file and scikit-learn fits the preprocessing on the training rows only: a
``ColumnTransformer`` with median imputation and standard scaling for numeric columns, and
most-frequent imputation and one-hot encoding for text, category and boolean columns.

The fitted values are then kept as plain data (``TablePreprocessing``: columns, medians,
means and scales, fill values, categories, class names). They travel in every checkpoint
(``state_dict``), which so still loads with ``weights_only=True``; prediction applies them
to raw rows without the training file; ``litnets export`` writes them to ``model.json``.
Applying them is a few lines of arithmetic (``TablePreprocessing.transform``), tested to
give exactly what the fitted ``ColumnTransformer`` gives.
"""

from __future__ import annotations

import difflib
import sys
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch
from torch import Tensor

from litnets.data.base import InMemoryDataModule, Split
from litnets.errors import ConfigError, DataError
from litnets.signatures import PositiveInt

Kind = Literal["classification", "regression"]
SPLIT_NAMES = {"train": "train", "val": "val", "valid": "val", "validation": "val", "test": "test"}


@dataclass
class TablePreprocessing:
    """What was fitted on the training rows, as plain data; applies it to raw rows."""

    target: str
    kind: str
    numeric: list[str] = field(default_factory=list)
    medians: list[float] = field(default_factory=list)
    means: list[float] = field(default_factory=list)
    scales: list[float] = field(default_factory=list)
    categorical: list[str] = field(default_factory=list)
    fills: list[str] = field(default_factory=list)
    categories: list[list[str]] = field(default_factory=list)
    classes: list[str] | None = None
    target_mean: float = 0.0
    target_scale: float = 1.0

    @property
    def width(self) -> int:
        return len(self.numeric) + sum(len(c) for c in self.categories)

    def feature_names(self) -> list[str]:
        """The model's inputs in order: numeric columns, then ``column=value`` one-hots."""
        onehots = [f"{c}={v}" for c, values in zip(self.categorical, self.categories, strict=True) for v in values]  # fmt: skip
        return [*self.numeric, *onehots]

    def transform(self, frame: Any, source: str, unknown: str = "error") -> Tensor:
        """Raw rows (a pandas DataFrame) → model inputs (N, width), float32.

        ``unknown="zeros"`` encodes a category never seen in training as all zeros (as
        scikit-learn's ``handle_unknown="ignore"``); ``"error"`` stops with its name.
        """
        import pandas as pd

        missing = [c for c in [*self.numeric, *self.categorical] if c not in frame.columns]
        if missing:
            raise DataError(f"{source} lacks the column(s) the model was trained on: {', '.join(missing)}")  # fmt: skip
        parts = []
        if self.numeric:
            numbers = np.empty((len(frame), len(self.numeric)))
            for j, column in enumerate(self.numeric):
                values = pd.to_numeric(frame[column], errors="coerce")
                bad = values.isna() & frame[column].notna()
                if bad.any():
                    row = int(np.flatnonzero(bad.to_numpy())[0])
                    raise DataError(
                        f"{source}, line {row + 2}: column {column!r} is numeric in training, "
                        f"got {frame[column].iloc[row]!r}"
                    )
                numbers[:, j] = values.fillna(self.medians[j]).to_numpy(dtype=float)
            parts.append((numbers - np.array(self.means)) / np.array(self.scales))
        for column, fill, values in zip(self.categorical, self.fills, self.categories, strict=True):
            text = as_text(frame[column]).fillna(fill)
            index = {value: i for i, value in enumerate(values)}
            unseen = sorted(set(text) - set(index))
            if unseen and unknown != "zeros":
                raise DataError(
                    f"{source}: column {column!r} has {unseen[0]!r}, a value never seen in "
                    f"training (seen: {', '.join(values)}); predict with "
                    "unknown_categories=zeros to encode unseen values as all zeros"
                )
            onehot = np.zeros((len(frame), len(values)))
            for row, value in enumerate(text):
                if value in index:
                    onehot[row, index[value]] = 1.0
            parts.append(onehot)
        if not parts:
            return torch.zeros(len(frame), 0)
        return torch.as_tensor(np.concatenate(parts, axis=1), dtype=torch.float32)

    def encode_target(self, column: Any, source: str) -> Tensor:
        if self.classes is None:
            return torch.tensor(column.to_numpy(dtype=float), dtype=torch.float32).unsqueeze(1)
        index = {name: i for i, name in enumerate(self.classes)}
        text = as_text(column)
        unseen = sorted(set(text.dropna()) - set(index))
        if unseen:
            raise DataError(f"{source}: target value {unseen[0]!r} is not one of the classes trained on ({', '.join(self.classes)})")  # fmt: skip
        return torch.as_tensor([index[value] for value in text], dtype=torch.long)


def as_text(column: Any) -> Any:
    """Category values as strings (``True``, ``3``), missing values kept missing."""
    return column.map(lambda v: v if _missing(v) else str(v)).astype(object)


def _missing(value: Any) -> bool:
    try:
        return bool(np.isnan(value)) if isinstance(value, float) else value is None
    except TypeError:
        return False


def read_table(path: str | Path, what: str = "data.path") -> Any:
    """A CSV as a pandas DataFrame, with one-line errors for the usual mistakes."""
    import pandas as pd

    path = Path(path).expanduser()
    if not path.is_file():
        raise DataError(f"{what}: no such file {path}")
    try:
        frame = pd.read_csv(path, skipinitialspace=True)
    except pd.errors.EmptyDataError:
        raise DataError(f"{what}: {path} is empty") from None
    except (pd.errors.ParserError, UnicodeDecodeError) as err:
        reason = str(err).strip().splitlines()[0]
        raise DataError(f"{what}: {path} is not a readable CSV: {reason}") from None
    if frame.empty:
        raise DataError(f"{what}: {path} has a header but no rows")
    return frame


def _closest(name: str, names: list[str]) -> str:
    close = difflib.get_close_matches(name, names, n=1)
    return f"did you mean {close[0]!r}? " if close else ""


class TableDataModule(InMemoryDataModule):
    """A CSV table: one target column, every other column (or the chosen ones) as features.

    Classification when the target is text, boolean, or integers with at most
    ``max_classes`` distinct values; regression otherwise; ``kind`` (``task.kind``) decides
    outright. Splits: ``split_column`` (train / val / test per row), else ``test_path``,
    else a seeded split of ``test_size`` (stratified for classification); validation comes
    out of the training rows (``val_size``), stratified too.
    """

    def __init__(
        self,
        path: str | None = None,
        target: str | None = None,
        features: list[str] | None = None,
        drop: list[str] | None = None,
        kind: Kind | None = None,
        test_path: str | None = None,
        split_column: str | None = None,
        test_size: float = 0.2,
        max_classes: PositiveInt = 20,
        missing: Literal["impute", "error"] = "impute",
        unknown_categories: Literal["error", "zeros"] = "error",
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.path = path
        self.target = target
        self.features = list(features) if features is not None else None
        self.drop = list(drop or [])
        self.kind = kind
        self.test_path = test_path
        self.split_column = split_column
        self.test_size = test_size
        self.max_classes = max_classes
        self.missing = missing
        self.unknown_categories = unknown_categories
        self.preprocessing: TablePreprocessing | None = None
        self._raw: dict[str, tuple[Any, Any]] | None = None

    # ---- what the task needs before training ----------------------------------------------
    @property
    def task(self) -> str:  # type: ignore[override]
        return self._fitted().kind

    @property
    def input_shape(self) -> tuple[int, ...]:
        return (self._fitted().width,)

    @property
    def num_outputs(self) -> int:
        classes = self._fitted().classes
        return len(classes) if classes is not None else 1

    @property
    def class_names(self) -> list[str] | None:
        return self._fitted().classes

    @property
    def target_scaling(self) -> tuple[float, float] | None:
        fitted = self._fitted()
        return (fitted.target_mean, fitted.target_scale) if fitted.classes is None else None

    def check_available(self) -> None:
        self._fitted()

    # ---- carried in checkpoints -----------------------------------------------------------
    def state_dict(self) -> dict[str, Any]:
        return {"preprocessing": asdict(self._fitted())}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.preprocessing = TablePreprocessing(**state["preprocessing"])

    # ---- loading ----------------------------------------------------------------------------
    def load(self) -> dict[str, Split]:
        preprocessing = self._fitted()
        if self._raw is None:  # restored from a checkpoint: read the file, keep its fit
            self._raw = self._read_splits(preprocessing.kind)
        splits = {}
        for name, (features, target) in self._raw.items():
            source = f"{self.path} ({name} rows)"
            x = preprocessing.transform(features, source, self.unknown_categories)
            splits[name] = (x, preprocessing.encode_target(target, source))
        return splits

    def read_table(self, path: Path) -> tuple[Tensor, list[str], Tensor | None]:
        """Raw rows of a CSV → model inputs, row names, and targets if the column is there."""
        preprocessing = self._fitted()
        frame = read_table(path, "input")
        x = preprocessing.transform(frame, str(path), self.unknown_categories)
        names = [
            f"{path.name}:{i + 2}" for i in range(len(frame))
        ]  # line numbers, after the header
        targets = None
        if preprocessing.target in frame.columns:
            targets = preprocessing.encode_target(frame[preprocessing.target], str(path))
        return x, names, targets

    # ---- fitting ----------------------------------------------------------------------------
    def _fitted(self) -> TablePreprocessing:
        if self.preprocessing is None:
            kind = self.kind or self._infer_kind(self._frame())
            self._raw = self._read_splits(kind)
            self.preprocessing = self._fit(*self._raw["train"], kind)
        return self.preprocessing

    def _frame(self) -> Any:
        if not self.path or not self.target:
            raise ConfigError("data=csv needs data.path=<file.csv> and data.target=<column>")
        frame = read_table(self.path)
        columns = [str(c) for c in frame.columns]
        if self.target not in columns:
            raise DataError(
                f"data.target: {self.path} has no column {self.target!r}; "
                f"{_closest(self.target, columns)}columns: {', '.join(columns)}"
            )
        for key, names in (("data.features", self.features or []), ("data.drop", self.drop)):
            for name in names:
                if name not in columns:
                    raise DataError(f"{key}: {self.path} has no column {name!r}; {_closest(name, columns)}columns: {', '.join(columns)}")  # fmt: skip
        unlabelled = frame[self.target].isna()
        if unlabelled.all():
            raise DataError(f"data.target: column {self.target!r} of {self.path} is empty")
        if unlabelled.any():
            print(f"litnets: data: {int(unlabelled.sum())} rows without a {self.target} value left out", file=sys.stderr)  # fmt: skip
        return frame[~unlabelled].reset_index(drop=True)

    def _infer_kind(self, frame: Any) -> str:
        import pandas as pd

        target = frame[self.target]
        if not pd.api.types.is_numeric_dtype(target) or pd.api.types.is_bool_dtype(target):
            return "classification"
        integral = np.all(np.mod(target.to_numpy(dtype=float), 1) == 0)
        return (
            "classification" if integral and target.nunique() <= self.max_classes else "regression"
        )

    def _columns(self, frame: Any) -> list[str]:
        chosen = self.features or [
            c for c in frame.columns if c not in (self.target, self.split_column)
        ]
        return [c for c in chosen if c not in self.drop]

    def _read_splits(self, kind: str) -> dict[str, tuple[Any, Any]]:
        """Raw (features, target) frames of train, val and test."""
        frame = self._frame()
        if self.split_column:
            if self.split_column not in frame.columns:
                raise DataError(f"data.split_column: {self.path} has no column {self.split_column!r}; {_closest(self.split_column, list(frame.columns))}")  # fmt: skip
            labels = frame[self.split_column].astype(str).str.strip().str.lower().map(SPLIT_NAMES)
            if labels.isna().any():
                bad = frame[self.split_column][labels.isna()].iloc[0]
                raise DataError(f"data.split_column: {self.split_column!r} holds {bad!r}; use train, val or test")  # fmt: skip
            parts = {name: frame[labels == name] for name in ("train", "val", "test")}
            if parts["train"].empty or parts["test"].empty:
                raise DataError(f"data.split_column: {self.split_column!r} must mark some rows train and some test")  # fmt: skip
            if parts["val"].empty:
                parts["train"], parts["val"] = self._split(
                    parts["train"], self.val_size, kind, "data.val_size"
                )
        elif self.test_path:
            test = read_table(self.test_path, "data.test_path")
            if self.target not in test.columns:
                raise DataError(f"data.test_path: {self.test_path} has no column {self.target!r}")
            train, val = self._split(frame, self.val_size, kind, "data.val_size")
            parts = {"train": train, "val": val, "test": test[test[self.target].notna()]}
        else:
            rest, test = self._split(frame, self.test_size, kind, "data.test_size")
            train, val = self._split(rest, self.val_size, kind, "data.val_size")
            parts = {"train": train, "val": val, "test": test}
        columns = self._columns(frame)
        return {name: (part[columns], part[self.target]) for name, part in parts.items()}

    def _split(self, frame: Any, size: float | int, kind: str, key: str) -> tuple[Any, Any]:
        """A seeded split, stratified by class for classification."""
        from sklearn.model_selection import train_test_split

        labels = as_text(frame[self.target]) if kind == "classification" else None
        if labels is not None:
            counts = labels.value_counts()
            if len(counts) < 2:
                raise DataError(f"data.target: {self.path} has only one class ({counts.index[0]!r}): nothing to classify")  # fmt: skip
            if counts.min() < 2:
                import pandas as pd

                guessed = self.kind is None and pd.api.types.is_numeric_dtype(frame[self.target])
                raise DataError(
                    f"{key}: class {counts.idxmin()!r} has only {counts.min()} row, too few to "
                    "stratify the split; add rows, merge classes, or give data.split_column"
                    + (" (or task.kind=regression, if the numbers are amounts)" if guessed else "")
                )
        try:
            first, second = train_test_split(
                frame, test_size=size, random_state=self.seed, stratify=labels
            )
        except ValueError as err:
            raise DataError(f"{key}={size}: {err}") from None
        return first, second

    def _fit(self, features: Any, target: Any, kind: str) -> TablePreprocessing:
        """Fit scikit-learn's imputers, scaler and encoder on the training rows; keep their values."""
        from sklearn.preprocessing import StandardScaler

        self._report_missing(features)
        transformer, numeric, categorical = fit_columns(features)
        fitted = dict(transformer.named_transformers_)
        numbers = fitted["numeric"] if numeric else None
        texts = fitted["categorical"] if categorical else None
        classes = (
            sorted(as_text(target).unique(), key=_natural) if kind == "classification" else None
        )
        scaling = {}
        if classes is None:  # regression: the target standardised too (RegressionTask undoes it)
            scaler = StandardScaler().fit(target.to_numpy(dtype=float).reshape(-1, 1))
            scaling = {
                "target_mean": float(scaler.mean_[0]),
                "target_scale": float(scaler.scale_[0]),
            }
        return TablePreprocessing(
            target=self.target,
            kind=kind,
            numeric=numeric,
            medians=[float(v) for v in numbers["impute"].statistics_] if numbers else [],
            means=[float(v) for v in numbers["scale"].mean_] if numbers else [],
            scales=[float(v) for v in numbers["scale"].scale_] if numbers else [],
            categorical=categorical,
            fills=[str(v) for v in texts["impute"].statistics_] if texts else [],
            categories=[[str(v) for v in c] for c in texts["onehot"].categories_] if texts else [],
            classes=classes,
            **scaling,
        )

    def _report_missing(self, features: Any) -> None:
        counts = features.isna().sum()
        counts = counts[counts > 0]
        if counts.empty:
            return
        listed = ", ".join(f"{column}: {int(n)}" for column, n in counts.items())
        if self.missing == "error":
            raise DataError(f"data.missing=error: missing values in the training rows ({listed})")
        print(f"litnets: data: imputing missing values in the training rows ({listed})", file=sys.stderr)  # fmt: skip


def fit_columns(features: Any) -> tuple[Any, list[str], list[str]]:
    """scikit-learn's ``ColumnTransformer`` for a table, fitted: (it, numeric, categorical).

    Numeric columns: median imputation, then standard scaling. Text, category and boolean
    columns (as text): most-frequent imputation, then one-hot encoding.
    """
    import pandas as pd
    from sklearn.compose import ColumnTransformer
    from sklearn.impute import SimpleImputer
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import OneHotEncoder, StandardScaler

    def is_number(column: str) -> bool:
        dtype = features[column].dtype
        return pd.api.types.is_numeric_dtype(dtype) and not pd.api.types.is_bool_dtype(dtype)

    numeric = [c for c in features.columns if is_number(c)]
    categorical = [c for c in features.columns if c not in numeric]
    numbers = Pipeline([("impute", SimpleImputer(strategy="median")), ("scale", StandardScaler())])
    onehot = OneHotEncoder(handle_unknown="ignore", sparse_output=False)
    texts = Pipeline([("impute", SimpleImputer(strategy="most_frequent")), ("onehot", onehot)])
    transformer = ColumnTransformer(
        [("numeric", numbers, numeric), ("categorical", texts, categorical)]
    )
    return transformer.fit(with_text_categories(features, categorical)), numeric, categorical


def with_text_categories(features: Any, categorical: list[str]) -> Any:
    """The frame with its category columns as text (``True``, ``3``), missing kept missing."""
    frame = features.copy()
    for column in categorical:
        frame[column] = as_text(frame[column])
    return frame


def _natural(value: str) -> tuple[int, float | str]:
    """Numbers in numeric order (2 before 10), then text."""
    try:
        return (0, float(value))
    except ValueError:
        return (1, value)
