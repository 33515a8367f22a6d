"""TensorBoard pictures, the HPARAMS summary, and PNG curves from scripts/plot.py."""

from __future__ import annotations

import io
import re
from pathlib import Path

import pytest
from PIL import Image
from tensorboard.backend.event_processing.event_file_loader import EventFileLoader
from tensorboard.plugins.hparams import plugin_data_pb2
from tensorboard.util.tensor_util import make_ndarray

from conftest import check_ok, read_metrics, run_dirs, run_script


def summaries(run_dir: Path) -> dict[str, list]:
    """Every summary value of a run, by tag (all event files of its tensorboard/ folder)."""
    values: dict[str, list] = {}
    for file in sorted((run_dir / "tensorboard").glob("events.out.tfevents.*")):
        for event in EventFileLoader(str(file)).Load():
            for value in event.summary.value:
                values.setdefault(value.tag, []).append(value)
    return values


def image_size(value) -> tuple[int, int]:
    # The loader migrates image summaries to tensors: [width, height, encoded PNG].
    encoded = (
        value.image.encoded_image_string if value.HasField("image") else value.tensor.string_val[2]
    )
    return Image.open(io.BytesIO(encoded)).size


def number(value) -> float:
    return (
        value.simple_value if value.HasField("simple_value") else float(make_ndarray(value.tensor))
    )


@pytest.fixture(scope="module")
def image_run(tmp_path_factory, tiny_data_dir) -> Path:
    log_dir = tmp_path_factory.mktemp("fashion")
    overrides = ["data=fashion_mnist", "model=cnn", f"paths.data_dir={tiny_data_dir}"]
    check_ok(
        run_script(
            "train.py", *overrides, "data.val_size=16", "trainer.max_epochs=2", log_dir=log_dir
        )
    )
    (run_dir,) = run_dirs(log_dir)
    return run_dir


@pytest.fixture(scope="module")
def sine_run(tmp_path_factory) -> Path:
    log_dir = tmp_path_factory.mktemp("sine")
    check_ok(
        run_script("train.py", "experiment=sine_poly", "trainer.max_epochs=200", log_dir=log_dir)
    )
    (run_dir,) = run_dirs(log_dir)
    return run_dir


def test_classification_pictures(image_run) -> None:
    values = summaries(image_run)
    for tag in ("samples/train", "test/predictions", "test/confusion_matrix"):
        (value,) = values[tag]
        width, height = image_size(value)
        assert width >= 400 and height >= 400, (tag, width, height)
    assert "model/summary/text_summary" in values


def test_model_summary_counts_flops(image_run) -> None:
    (value,) = summaries(image_run)["model/summary/text_summary"]
    text = make_ndarray(value.tensor).item().decode()
    flops = re.search(r"([\d.]+ ?[KMG]?)\s+Total Flops", text)  # Lightning's table layout
    assert flops and float(flops.group(1).rstrip(" KMG")) > 0, text[-400:]


def test_confusion_matrix_title_fits_the_figure() -> None:
    import torch

    from litnets import plots

    figure = plots.confusion_matrix(torch.tensor([[9, 1, 0], [0, 10, 0], [1, 0, 9]]), list("abc"))
    figure.canvas.draw()
    title = figure.axes[0].title
    box = title.get_window_extent(figure.canvas.get_renderer())
    width, height = figure.canvas.get_width_height()
    assert box.x0 >= 0 and box.x1 <= width and box.y1 <= height, (box, width)
    assert "accuracy 0.9333" in title.get_text()


def test_hparams_hold_the_final_metrics(image_run) -> None:
    values = summaries(image_run)
    start = plugin_data_pb2.HParamsPluginData.FromString(
        values["_hparams_/session_start_info"][0].metadata.plugin_data.content
    ).session_start_info
    hparams = {k: v.string_value or v.number_value for k, v in start.hparams.items()}
    assert hparams["data"] == "FashionMNISTDataModule"
    assert hparams["model"] == "CNN"
    assert hparams["optimizer"] == "Adam"
    assert hparams["lr"] == pytest.approx(0.001)
    assert hparams["max_epochs"] == 2
    experiment = plugin_data_pb2.HParamsPluginData.FromString(
        values["_hparams_/experiment"][0].metadata.plugin_data.content
    ).experiment
    metric_tags = {m.name.tag for m in experiment.metric_infos}
    assert {"test/acc", "test/loss", "val/acc_best"} <= metric_tags
    metrics = read_metrics(image_run)
    logged = [number(v) for v in values["test/acc"]]
    assert logged == pytest.approx([metrics["test"]["test/acc"]] * len(logged))


def test_regression_fit_and_equation(sine_run) -> None:
    values = summaries(sine_run)
    (fit,) = values["test/fit"]
    assert min(image_size(fit)) >= 300
    (text,) = values["model/learned/text_summary"]
    assert b"equation" in text.tensor.string_val[0]
    assert "samples/train" not in values  # no image grids for 1-D data


def test_pictures_flag_turns_them_off(tmp_path) -> None:
    check_ok(run_script("train.py", "pictures=false", "trainer.max_epochs=20", log_dir=tmp_path))
    (run_dir,) = run_dirs(tmp_path)
    tags = set(summaries(run_dir))
    assert "test/confusion_matrix" not in tags
    assert "model/summary/text_summary" not in tags
    assert "test/acc" in tags


def test_plot_script_single_runs_and_overlay(tmp_path, image_run, sine_run) -> None:
    result = run_script("plot.py", str(image_run), str(sine_run), log_dir=tmp_path)
    check_ok(result)
    for run_dir in (image_run, sine_run):
        png = Image.open(run_dir / "curves.png")
        assert png.size[0] >= 800
    output = tmp_path / "compare.png"
    result = run_script(
        "plot.py",
        str(image_run.parent),
        str(sine_run.parent),
        "--overlay",
        "--output",
        str(output),
        log_dir=tmp_path,
    )
    check_ok(result)
    assert output.stat().st_size > 10_000


def test_plot_script_on_a_multirun(tmp_path) -> None:
    sweep = ["-m", "optimizer=sgd,adam", "trainer.max_epochs=40", "pictures=false"]
    check_ok(run_script("train.py", *sweep, log_dir=tmp_path))
    (multirun,) = (tmp_path / "train" / "multiruns").iterdir()
    result = run_script("plot.py", str(multirun), "--overlay", log_dir=tmp_path)
    check_ok(result)
    assert (multirun / "curves.png").stat().st_size > 10_000
    assert len(list(multirun.glob("*/tensorboard"))) == 2


def test_plot_script_reads_a_csv_logged_run(tmp_path) -> None:
    from litnets import training
    from litnets.config import compose
    from litnets.curves import find_runs, read_scalars

    run_dir = tmp_path / "csv-run"
    overrides = ["logger=csv", "trainer.max_epochs=40", "pictures=false"]
    training.train(compose(overrides, output_dir=str(run_dir)))
    assert find_runs([tmp_path]) == [run_dir / "csv"]
    curves = read_scalars(run_dir / "csv")
    assert [epoch for epoch, _ in curves["train/loss"]] == list(range(1, 41))
    assert [epoch for epoch, _ in curves["val/acc"]] == [20, 40]  # Iris validates every 20
    assert "test/acc" in curves and not {"epoch", "step", "train/loss_step"} & set(curves)
    check_ok(run_script("plot.py", str(run_dir), log_dir=tmp_path))
    assert Image.open(run_dir / "curves.png").size[0] >= 800


def test_plot_script_errors_are_one_line(tmp_path) -> None:
    result = run_script("plot.py", str(tmp_path), log_dir=tmp_path)
    assert result.returncode == 2
    assert result.stderr.startswith("litnets: error: no logged scalars (TensorBoard event files or")
