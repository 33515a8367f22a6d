"""``data=csv``: your own table, preprocessed by scikit-learn, the fit carried in checkpoints."""

from __future__ import annotations

import json
import statistics
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from conftest import check_ok, read_metrics, run_dirs, run_script
from litnets import training
from litnets.config import compose
from litnets.data.table import TableDataModule, fit_columns, with_text_categories
from litnets.errors import ConfigError, DataError

QUIET = ["pictures=false", "logger=none", "callbacks.progress_bar=null"]


def people(n: int = 300, seed: int = 0) -> pd.DataFrame:
    """Numbers, text, booleans and missing values; the label follows from them."""
    rng = np.random.default_rng(seed)
    frame = pd.DataFrame({
        "age": rng.integers(18, 80, n).astype(float),
        "income": rng.normal(50, 15, n),
        "city": rng.choice(["paris", "lyon", "nice"], n),
        "member": rng.choice([True, False], n),
    })  # fmt: skip
    score = (
        (frame.age - 50) / 10 + (frame.city == "paris") * 1.5 + frame.member + rng.normal(0, 0.5, n)
    )
    frame["label"] = np.where(score > 0.5, "yes", "no")
    frame.loc[rng.choice(n, 12, replace=False), "age"] = np.nan
    frame.loc[rng.choice(n, 5, replace=False), "city"] = np.nan
    return frame


@pytest.fixture(scope="module")
def people_csv(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("table") / "people.csv"
    people().to_csv(path, index=False)
    return path


def table(path: Path, target: str = "label", **options) -> TableDataModule:
    return TableDataModule(path=str(path), target=target, **options)


# ---- preprocessing --------------------------------------------------------------------------


def test_stored_preprocessing_applies_exactly_what_scikit_learn_fitted(people_csv) -> None:
    data = table(people_csv)
    data.setup()
    fitted = data.preprocessing
    train_rows, _ = data._raw["train"]
    transformer, numeric, categorical = fit_columns(train_rows)
    assert (numeric, categorical) == (["age", "income"], ["city", "member"])
    frame = people(50, seed=1).drop(columns="label")  # other rows, missing values included
    expected = transformer.transform(with_text_categories(frame, categorical))
    ours = fitted.transform(frame, "rows")
    assert ours.shape == (50, 2 + 3 + 2)
    assert np.allclose(ours.numpy(), expected, atol=1e-6)
    assert fitted.feature_names() == [
        "age", "income", "city=lyon", "city=nice", "city=paris", "member=False", "member=True"
    ]  # fmt: skip


def test_the_fit_uses_training_rows_only(people_csv) -> None:
    data = table(people_csv)
    data.setup()
    train_rows, _ = data._raw["train"]
    assert data.preprocessing.medians[0] == pytest.approx(train_rows["age"].median())
    assert data.preprocessing.means[1] == pytest.approx(train_rows["income"].mean())
    x, _ = data.splits["train"]
    assert torch.allclose(x[:, 1].mean(), torch.tensor(0.0), atol=1e-5)  # scaled on these rows


@pytest.mark.parametrize(
    ("values", "kind", "classes"),
    [
        (["a", "b"] * 10, "classification", ["a", "b"]),
        ([True, False] * 10, "classification", ["False", "True"]),
        ([1, 2, 10] * 7, "classification", ["1", "2", "10"]),  # few integers: classes
        (list(np.linspace(0, 1, 21)), "regression", None),
        (list(range(30)), "regression", None),  # many integers: a quantity
    ],
)
def test_the_task_follows_the_target(tmp_path, values, kind, classes) -> None:
    path = tmp_path / "t.csv"
    pd.DataFrame({"x": np.arange(len(values)), "y": values}).to_csv(path, index=False)
    data = table(path, "y", test_size=0.25, val_size=0.25)
    assert (data.task, data.class_names) == (kind, classes)


def test_task_kind_decides_outright(tmp_path) -> None:
    path = tmp_path / "t.csv"
    pd.DataFrame({"x": range(21), "y": [1, 2, 10] * 7}).to_csv(path, index=False)
    sizes = {"test_size": 0.25, "val_size": 0.25}
    assert table(path, "y", **sizes).task == "classification"
    assert table(path, "y", kind="regression", **sizes).task == "regression"


def test_splits_are_stratified_and_seeded(people_csv) -> None:
    data = table(people_csv, test_size=0.2, val_size=0.15)
    data.setup()
    sizes = {name: len(y) for name, (_, y) in data.splits.items()}
    assert sizes == {"train": 204, "val": 36, "test": 60}
    share = {name: float(y.float().mean()) for name, (_, y) in data.splits.items()}
    assert max(share.values()) - min(share.values()) < 0.03  # the same class balance in each
    again = table(people_csv)
    again.setup()
    assert torch.equal(again.splits["test"][1], data.splits["test"][1])


def test_a_split_column_or_a_test_file(tmp_path, people_csv) -> None:
    frame = pd.read_csv(people_csv)
    frame["part"] = ["train"] * 200 + ["valid"] * 40 + ["test"] * 60
    frame.to_csv(tmp_path / "marked.csv", index=False)
    data = table(tmp_path / "marked.csv", split_column="part")
    data.setup()
    assert {n: len(y) for n, (_, y) in data.splits.items()} == {"train": 200, "val": 40, "test": 60}
    assert "part" not in data.preprocessing.feature_names()[0]
    frame.iloc[:240].drop(columns="part").to_csv(tmp_path / "train.csv", index=False)
    frame.iloc[240:].drop(columns="part").to_csv(tmp_path / "test.csv", index=False)
    data = table(tmp_path / "train.csv", test_path=str(tmp_path / "test.csv"))
    data.setup()
    assert len(data.splits["test"][1]) == 60


def test_regression_targets_are_learned_standardised(tmp_path) -> None:
    rng = np.random.default_rng(0)
    x = rng.normal(size=(400, 3))
    y = 150 + 60 * (x @ np.array([1.0, -2.0, 0.5])) + rng.normal(0, 5, 400)
    path = tmp_path / "reg.csv"
    pd.DataFrame({"a": x[:, 0], "b": x[:, 1], "c": x[:, 2], "y": y}).to_csv(path, index=False)
    summary = training.train(
        compose(
            ["data=csv", f"data.path={path}", "data.target=y", *QUIET], output_dir=str(tmp_path)
        )
    )
    assert summary["task"] == "regression"
    assert summary["test"]["test/r2"] > 0.95
    assert summary["test"]["test/mae"] < 20  # in the target's own units (y ≈ 150 ± 140)


# ---- real tables: as good as a logistic regression --------------------------------------------


def _sklearn_table(name: str, folder: Path) -> Path:
    from sklearn.datasets import load_breast_cancer, load_wine

    loaded = {"breast_cancer": load_breast_cancer, "wine": load_wine}[name](as_frame=True)
    frame = loaded.frame.copy()
    frame["target"] = [str(loaded.target_names[t]) for t in loaded.target]
    path = folder / f"{name}.csv"
    frame.to_csv(path, index=False)
    return path


@pytest.mark.slow
@pytest.mark.parametrize(
    ("name", "model"), [("breast_cancer", "mlp"), ("breast_cancer", "softmax"), ("wine", "mlp")]
)
def test_real_tables_train_as_well_as_logistic_regression(tmp_path, name, model) -> None:
    """The defaults alone (data=csv + a model) within 2 points of LogisticRegression.

    Averaged over three seeds, each its own split: a test split of 57 rows (breast cancer)
    moves 1.75 points a row. With seed 0 alone the MLP scored 0.947 against a 0.945 bar
    under torch 2.14.1 and 0.930 under torch 2.4.1, while seeds 1 and 2 gave 0.97-0.98.
    """
    from sklearn.linear_model import LogisticRegression

    path = _sklearn_table(name, tmp_path)
    ours, references = [], []
    for seed in (0, 1, 2):
        overrides = ["data=csv", f"data.path={path}", "data.target=target", f"model={model}",
                     f"seed={seed}", *QUIET]  # fmt: skip
        cfg = compose(overrides, output_dir=str(tmp_path / f"run-{seed}"))
        ours.append(training.train(cfg)["test"]["test/acc"])
        data = table(path, "target", val_size=cfg.data.val_size, seed=seed)
        data.setup()
        (x, y), (x_test, y_test) = data.splits["train"], data.splits["test"]
        baseline = LogisticRegression(max_iter=5000).fit(x.numpy(), y.numpy())
        references.append(baseline.score(x_test.numpy(), y_test.numpy()))
    mean = statistics.fmean
    assert mean(ours) >= mean(references) - 0.02, (ours, references)


# ---- through the commands: train, predict on raw rows, eval, export -----------------------------


@pytest.fixture(scope="module")
def people_run(tmp_path_factory, people_csv) -> Path:
    log_dir = tmp_path_factory.mktemp("people-run")
    args = ["data=csv", f"data.path={people_csv}", "data.target=label", "trainer.max_epochs=40"]
    result = run_script("train.py", *args, log_dir=log_dir)
    check_ok(result)
    assert "imputing missing values in the training rows (age: " in result.stderr
    (run_dir,) = run_dirs(log_dir)
    return run_dir


def test_the_run_is_a_normal_classification_run(people_run) -> None:
    metrics = read_metrics(people_run)
    assert (metrics["task"], metrics["data"]) == ("classification", "TableDataModule")
    assert metrics["test"]["test/acc"] >= 0.85
    checkpoint = torch.load(people_run / "checkpoints" / "best.ckpt", weights_only=True)
    assert checkpoint["TableDataModule"]["preprocessing"]["categories"][0] == [
        "lyon",
        "nice",
        "paris",
    ]


def test_predict_applies_the_stored_preprocessing_to_raw_rows(tmp_path, people_run) -> None:
    rows = people(200, seed=3)
    rows.drop(columns="label").to_csv(tmp_path / "new.csv", index=False)
    rows.to_csv(tmp_path / "labelled.csv", index=False)
    unseen = rows.drop(columns="label").head(3).assign(city=["paris", "rome", "nice"])
    unseen.to_csv(tmp_path / "unseen.csv", index=False)
    numeric_text = rows.drop(columns="label").head(3).astype({"age": object})
    numeric_text.loc[1, "age"] = "old"
    numeric_text.to_csv(tmp_path / "text.csv", index=False)

    result = run_script("predict.py", f"ckpt_path={people_run}", f"input={tmp_path / 'new.csv'}", log_dir=tmp_path / "a")  # fmt: skip
    check_ok(result)
    (summary,) = [read_metrics(d) for d in run_dirs(tmp_path / "a")]
    assert len(summary["predictions"]) == 200 and "accuracy" not in summary
    assert {p["prediction"] for p in summary["predictions"]} <= {"yes", "no"}
    assert summary["predictions"][0]["input"] == "new.csv:2"  # the file's line

    result = run_script("predict.py", f"ckpt_path={people_run}", f"input={tmp_path / 'labelled.csv'}", log_dir=tmp_path / "b")  # fmt: skip
    check_ok(result)
    assert read_metrics(run_dirs(tmp_path / "b")[0])["accuracy"] >= 0.8
    assert "litnets: accuracy" in result.stdout

    result = run_script("predict.py", f"ckpt_path={people_run}", f"input={tmp_path / 'unseen.csv'}", log_dir=tmp_path / "c")  # fmt: skip
    assert result.returncode == 2
    assert "column 'city' has 'rome', a value never seen in training" in result.stderr
    assert not list((tmp_path / "c").rglob("*.csv"))  # nothing written
    result = run_script("predict.py", f"ckpt_path={people_run}", f"input={tmp_path / 'unseen.csv'}", "unknown_categories=zeros", log_dir=tmp_path / "d")  # fmt: skip
    check_ok(result)

    result = run_script("predict.py", f"ckpt_path={people_run}", f"input={tmp_path / 'text.csv'}", log_dir=tmp_path / "e")  # fmt: skip
    assert result.returncode == 2
    assert result.stderr.strip().endswith("line 3: column 'age' is numeric in training, got 'old'")


def test_eval_and_export_carry_the_preprocessing(tmp_path, people_run) -> None:
    check_ok(run_script("eval.py", f"ckpt_path={people_run}", log_dir=tmp_path))
    evaluated = read_metrics(run_dirs(tmp_path / "eval")[0])
    assert evaluated["test"] == read_metrics(people_run)["test"]
    check_ok(run_script("export.py", f"ckpt_path={people_run}", log_dir=tmp_path))
    (spec,) = tmp_path.rglob("model.json")
    exported = json.loads(spec.read_text())
    assert exported["class_names"] == ["no", "yes"]
    steps = exported["preprocessing"]
    assert steps["numeric"] == ["age", "income"] and len(steps["medians"]) == 2
    assert steps["categories"] == [["lyon", "nice", "paris"], ["False", "True"]]


# ---- bad input: one line, nothing written -------------------------------------------------------


@pytest.mark.parametrize(
    ("make", "options", "error", "message"),
    [
        (None, {"path": "nope.csv"}, DataError, "data.path: no such file"),
        ("", {}, DataError, "is empty"),
        ("x,label\n", {}, DataError, "has a header but no rows"),
        ("x,label\n1,a\n2,b\n", {"target": "lable"}, DataError, "no column 'lable'; did you mean 'label'?"),
        ("x,label\n" + "1,a\n" * 9, {}, DataError, "only one class ('a')"),
        ("x,label\n" + "1,a\n" * 5 + "2,b\n" * 5 + "3,c\n", {}, DataError, "class 'c' has only 1 row, too few to stratify"),
        ("x,label\n" + "1,7\n" * 5 + "2,8\n" * 5 + "3,9\n", {}, DataError, "data.split_column (or task.kind=regression, if the numbers are amounts)"),
        ("x,label\n" + ",a\n,b\n" * 4 + "1,a\n2,b\n" * 8, {"missing": "error"}, DataError, "missing values in the training rows (x: "),
        ("x,label\n1,a\n", {"features": ["z"]}, DataError, "data.features: "),
        ("x,label\n1,a\n", {"target": None}, ConfigError, "needs data.path=<file.csv> and data.target"),
    ],
)  # fmt: skip
def test_bad_tables_are_one_line(tmp_path, make, options, error, message) -> None:
    path = tmp_path / "bad.csv"
    if make is not None:
        path.write_text(make)
    options = {"path": str(path), "target": "label", **options}
    with pytest.raises(error) as err:
        TableDataModule(**options).check_available()
    assert message in str(err.value) and "\n" not in str(err.value)


def test_a_bad_table_writes_nothing(tmp_path, people_csv) -> None:
    result = run_script("train.py", "data=csv", f"data.path={people_csv}", "data.target=lable", log_dir=tmp_path)  # fmt: skip
    assert result.returncode == 2
    assert result.stderr.strip().splitlines()[-1].startswith("litnets: error: data.target: ")
    assert not list(tmp_path.rglob("*")) or not [p for p in tmp_path.rglob("*") if p.is_file()]
