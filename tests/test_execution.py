"""Several optimizer steps per Lightning call (``task.steps_per_execution``), bit for bit.

Every chunked run here is compared with the same run at one step per call: final weights,
every logged value (the step loss and learning rate at every step, the epoch metrics), the
global step. In process, on generated MNIST-format data (86 training images in batches of 8:
11 batches an epoch, the last one short), so chunks of 4 end short too.
"""

from __future__ import annotations

import csv
import json
from pathlib import Path

import lightning as L
import pytest
import torch
from lightning.pytorch.callbacks import ModelCheckpoint
from lightning.pytorch.plugins.precision import DoublePrecision, Precision

from conftest import REPO, check_ok, read_metrics, run_dirs, run_script
from litnets import training
from litnets.callbacks.progress import ProgressBar
from litnets.config import compose
from litnets.data.augment import BatchAugment
from litnets.data.batches import (
    CPU_GATHER_BATCHES,
    Chunk,
    Chunked,
    EpochIndexSampler,
    TensorBatches,
)
from litnets.errors import ConfigError, DivergenceError
from litnets.precision import QuietStepHooks
from litnets.tasks import execution

SCHEDULES = {
    "step": ["scheduler=step", "scheduler.step_size=2"],
    "plateau": ["scheduler=plateau", "scheduler.patience=0", "+scheduler.threshold=0.9"],
    "onecycle": ["scheduler=onecycle"],
}


def tiny_mnist(data_dir: Path, *extra: str) -> list[str]:
    """``experiment=mnist_mlp`` (BatchNorm MLP, SGD + momentum) on 86 generated images."""
    return [
        "experiment=mnist_mlp", f"paths.data_dir={data_dir}", "data.val_size=10",
        "data.batch_size=8", "trainer.max_epochs=4", "seed=7", "pictures=false",
        "logger=csv", "trainer.log_every_n_steps=1", "task.check_finite_every_n_steps=1",
        "callbacks.progress_bar=null", "+trainer.enable_progress_bar=false",
        "trainer.enable_model_summary=false", *extra,
    ]  # fmt: skip


class Seen(L.Callback):
    """What the fit ran with: batches per Lightning call and the batches Lightning counted."""

    def on_train_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self.steps_per_chunk = trainer.datamodule.steps_per_chunk
        self.lightning_batches = trainer.num_training_batches
        self.global_step = trainer.global_step


def fit(tmp_path: Path, name: str, overrides: list[str], **kwargs) -> tuple[dict, Seen]:
    seen = Seen()
    cfg = compose(overrides, output_dir=str(tmp_path / name))
    summary = training.train(cfg, extra_callbacks=[seen], **kwargs)
    return summary, seen


def logged(run_dir: Path, *, fit_only: bool = False) -> list[dict[str, str]]:
    """Every row the CSV logger wrote, a resumed part (``csv/resumed-1/``) after the first."""
    rows = []
    for path in sorted(run_dir.rglob("metrics.csv"), key=lambda p: len(p.parts)):
        with path.open() as f:
            rows += [{k: v for k, v in row.items() if v} for row in csv.DictReader(f)]
    return [r for r in rows if not any(k.startswith("test/") for k in r)] if fit_only else rows


def weights(run_dir: Path) -> dict[str, torch.Tensor]:
    return torch.load(run_dir / "checkpoints" / "last.ckpt", weights_only=True)["state_dict"]


def assert_same_run(
    tmp_path: Path, a: str, b: str, summaries: dict[str, dict], fit_only: bool = False
) -> None:
    """Bit for bit: weights (BatchNorm statistics included), every logged row, the record."""
    wa, wb = weights(tmp_path / a), weights(tmp_path / b)
    assert wa.keys() == wb.keys()
    assert all(torch.equal(wa[k], wb[k]) for k in wa), f"{a} and {b} end with other weights"
    rows_a, rows_b = (
        logged(tmp_path / a, fit_only=fit_only),
        logged(tmp_path / b, fit_only=fit_only),
    )
    assert sum("train/loss_step" in row for row in rows_a) == summaries[a]["global_steps"]
    assert rows_a == rows_b
    for key in ("test", "best_val", "global_steps", "epochs"):
        assert summaries[a][key] == summaries[b][key], key


# ---- the chunks themselves ---------------------------------------------------------------------


def test_chunks_hold_the_same_batches_in_the_same_order() -> None:
    x = torch.arange(86.0).reshape(86, 1, 1, 1).expand(86, 1, 4, 4).contiguous()
    y = torch.arange(86)
    sampler = EpochIndexSampler(86, shuffle=True, seed=3)
    augment = BatchAugment(hflip=True, crop_padding=1, fill=torch.zeros(1))
    batches = TensorBatches((x, y), 8, sampler, augment=augment)
    sampler.set_epoch(2)
    plain = list(batches)
    for size, lengths in ((4, [4, 4, 3]), (11, [11]), (None, [11]), (50, [11])):
        chunked = Chunked(batches, size)
        assert chunked.sampler is sampler  # Lightning's set_epoch reaches the order
        assert (len(chunked), chunked.num_batches) == (len(lengths), 11)
        chunks = list(chunked)
        assert all(isinstance(c, Chunk) for c in chunks)
        assert [len(c) for c in chunks] == lengths
        assert [c.first_index for c in chunks] == [sum(lengths[:i]) for i in range(len(lengths))]
        # One indexing operation per chunk, or per CPU_GATHER_BATCHES batches on the CPU:
        # each batch a view of its block (all alive here, so no two blocks share memory).
        blocks = [target.untyped_storage().data_ptr() for c in chunks for _, target in c]
        firsts = [i for i, block in enumerate(blocks) if block not in blocks[:i]]
        assert firsts == list(range(0, 11, min(chunked.size, CPU_GATHER_BATCHES)))
        flat = [batch for chunk in chunks for batch in chunk]
        assert len(flat) == len(plain) and len(flat[-1][0]) == 6  # the short batch kept
        for (xa, ya), (xb, yb) in zip(flat, plain, strict=True):
            assert torch.equal(xa, xb) and torch.equal(ya, yb)


def test_gathers_are_capped_on_the_cpu_only() -> None:
    """A CPU gather fetches at most CPU_GATHER_BATCHES batches (fewer page faults); on an
    accelerator (``meta`` stands in) a chunk is one gather, one launch."""

    def chunked(device: str, size: int) -> Chunked:
        tensors = (torch.zeros(100, 1, device=device),)
        return Chunked(TensorBatches(tensors, 2, EpochIndexSampler(100, shuffle=True)), size)

    assert chunked("cpu", 32).batches.batches_per_gather == CPU_GATHER_BATCHES
    assert chunked("cpu", 4).batches.batches_per_gather == 4
    assert chunked("meta", 32).batches.batches_per_gather == 32


class FakeTqdm:
    """The tqdm attributes litnets' bar reads and writes; records each position it shows."""

    def __init__(self, total: int, mininterval: float) -> None:
        self.total, self.n, self.disable, self.mininterval = total, 0, False, mininterval
        self.shown: list[int] = []

    def set_postfix(self, *args, **kwargs) -> None:  # tqdm refreshes here
        self.shown.append(self.n)


def bar_over(tqdm: FakeTqdm, refresh_rate: int) -> ProgressBar:
    bar = ProgressBar(refresh_rate=refresh_rate)
    bar.train_progress_bar = tqdm
    bar.get_metrics = lambda trainer, module: {}
    return bar


def test_progress_bar_counts_batches_not_chunks() -> None:
    bar = bar_over(FakeTqdm(total=11, mininterval=0.1), refresh_rate=1)
    chunk = Chunk([(torch.zeros(1), torch.zeros(1))] * 3, first_index=8)
    bar.on_train_batch_end(None, None, None, chunk, batch_idx=2)
    assert bar.train_progress_bar.n == 11  # batches 8, 9, 10 done: 11 of 11


@pytest.mark.parametrize(
    ("size", "mininterval", "shown"),
    [
        (32, 0.0, [32, 64, 96, 100]),  # every chunk passes a multiple of 10 (not every 160)
        (4, 0.0, [12, 20, 32, 40, 52, 60, 72, 80, 92, 100]),  # those that pass one, the end
        (10, 0.0, [10, 20, 30, 40, 50, 60, 70, 80, 90, 100]),
        (32, 60.0, [32, 100]),  # at most every mininterval seconds, and at the end
    ],
)
def test_progress_bar_refreshes_after_chunks_that_pass_its_rate(size, mininterval, shown) -> None:
    """``refresh_rate=10`` means every 10 batches, no more often than tqdm's ``mininterval``;
    Lightning's own test (the position a multiple of the rate) held for a chunk's last batch
    only every lcm(K, 10) batches."""
    bar = bar_over(FakeTqdm(total=100, mininterval=mininterval), refresh_rate=10)
    one = (torch.zeros(1), torch.zeros(1))
    for first in range(0, 100, size):
        chunk = Chunk([one] * min(size, 100 - first), first_index=first)
        bar.on_train_batch_end(None, None, None, chunk, batch_idx=first // size)
    assert bar.train_progress_bar.shown == shown


# ---- bit-identical training --------------------------------------------------------------------


@pytest.mark.parametrize("schedule", SCHEDULES)
def test_chunked_steps_train_bit_for_bit_like_single_steps(tmp_path, tiny_data_dir, schedule):
    base = tiny_mnist(tiny_data_dir, *SCHEDULES[schedule])
    summaries = {}
    for k, expected_chunk in (("1", 1), ("4", 4), ("epoch", None)):
        summaries[k], seen = fit(tmp_path, k, [*base, f"task.steps_per_execution={k}"])
        assert seen.steps_per_chunk == expected_chunk
        assert seen.lightning_batches == {"1": 11, "4": 3, "epoch": 1}[k]
        assert seen.global_step == 44  # optimizer steps, not Lightning calls
    assert_same_run(tmp_path, "1", "4", summaries)
    assert_same_run(tmp_path, "1", "epoch", summaries)
    lrs = [float(row["lr-SGD"]) for row in logged(tmp_path / "4") if "lr-SGD" in row]
    assert len(lrs) == 44 and len(set(lrs)) > 1  # the rate at every step, and it moved


def test_max_steps_is_exact_inside_a_chunk(tmp_path, tiny_data_dir) -> None:
    base = tiny_mnist(tiny_data_dir, "trainer.max_steps=14", "scheduler=onecycle")
    summaries = {k: fit(tmp_path, k, [*base, f"task.steps_per_execution={k}"])[0] for k in "14"}
    assert summaries["4"]["global_steps"] == 14  # stopped 2 batches into the second chunk
    assert_same_run(tmp_path, "1", "4", summaries)


def test_augmentation_dropout_and_resume_are_exact_in_chunks(tmp_path, tiny_data_dir) -> None:
    base = tiny_mnist(
        tiny_data_dir, "model.dropout=0.3", "data.augment.hflip=true", "data.augment.crop_padding=2"
    )
    summaries = {"1": fit(tmp_path, "1", [*base, "task.steps_per_execution=1"])[0]}
    fit(tmp_path, "4", [*base, "task.steps_per_execution=4", "trainer.max_epochs=2"])
    resume = compose([f"resume={tmp_path / '4'}"], output_dir=str(tmp_path / "unused"))
    summaries["4"] = training.train(resume, overrides=["trainer.max_epochs=4"])
    assert summaries["4"]["epochs"] == 4
    # The first part's CSV is kept (Lightning's CSV logger would delete it), the rest beside it.
    assert (tmp_path / "4" / "csv" / "resumed-1" / "metrics.csv").is_file()
    assert_same_run(tmp_path, "1", "4", summaries, fit_only=True)  # the first part tested too


def test_divergence_stops_at_the_same_step(tmp_path, tiny_data_dir) -> None:
    messages = {}
    for k in ("1", "4"):
        cfg = compose(
            [*tiny_mnist(tiny_data_dir, "optimizer.lr=1e6", "model.batchnorm=false"),
             f"task.steps_per_execution={k}"], output_dir=str(tmp_path / k),
        )  # fmt: skip
        with pytest.raises(DivergenceError) as caught:
            training.train(cfg)
        messages[k] = str(caught.value)
    assert messages["1"] == messages["4"]
    assert "step" in messages["1"]


@pytest.mark.slow
def test_real_mnist_epoch_is_identical_in_chunks(tmp_path, real_data_dir) -> None:
    base = ["experiment=mnist_mlp", f"paths.data_dir={real_data_dir}", "trainer.max_epochs=2"]
    base += ["pictures=false", "logger=none"]
    summaries = {}
    for k in ("1", "auto"):
        summaries[k], seen = fit(tmp_path, k, [*base, f"task.steps_per_execution={k}"])
    assert seen.steps_per_chunk == execution.AUTO_STEPS
    assert summaries["auto"]["test"] == summaries["1"]["test"]
    assert summaries["auto"]["best_val"] == summaries["1"]["best_val"]
    w1, wk = weights(tmp_path / "1"), weights(tmp_path / "auto")
    assert all(torch.equal(w1[k], wk[k]) for k in w1)


@pytest.mark.slow
def test_two_process_ddp_is_identical_in_chunks(tmp_path) -> None:
    """Both ranks step in chunks; equal weights across ranks mean every step synchronised."""
    finals = {}
    for k in ("1", "2"):
        folder = tmp_path / f"probe{k}"
        result = run_script(
            "train.py", "trainer=ddp_cpu", "trainer.devices=2", "data.batch_size=16",
            "trainer.max_epochs=20", f"task.steps_per_execution={k}", "pictures=false",
            "+callbacks.probe._target_=ddp_probe.RecordFinalWeights",
            f"+callbacks.probe.folder={folder}", log_dir=tmp_path / f"logs{k}",
            PYTHONPATH=str(REPO / "tests"),
        )  # fmt: skip
        check_ok(result)
        finals[k] = [json.loads((folder / f"final{r}.json").read_text()) for r in (0, 1)]
        (run_dir,) = run_dirs(tmp_path / f"logs{k}")
        finals[k].append(read_metrics(run_dir))
    one, two = finals["1"], finals["2"]
    assert [r["steps_per_chunk"] for r in two[:2]] == [2, 2]  # 3 batches a rank: chunks 2 + 1
    assert [r["global_step"] for r in two[:2]] == [60, 60]
    assert two[0]["weights"] == two[1]["weights"]  # gradients averaged at every step
    assert two[0]["weights"] == one[0]["weights"]
    assert two[2]["test"] == one[2]["test"]


# ---- when chunks are chosen, and when not --------------------------------------------------------


def test_the_default_run_steps_in_chunks(tmp_path, tiny_data_dir) -> None:
    """Default callbacks (checkpoints, progress bar, pictures) need no per-batch call."""
    overrides = ["data=mnist", f"paths.data_dir={tiny_data_dir}", "data.batch_size=2"]
    overrides += ["data.val_size=10"]
    summary, seen = fit(tmp_path, "run", [*overrides, "trainer.max_epochs=1"])
    assert seen.steps_per_chunk == execution.AUTO_STEPS
    assert (seen.lightning_batches, seen.global_step) == (2, 43)  # 43 batches: 32 + 11
    assert summary["status"] == "completed"


class EveryBatch(L.Callback):
    def on_train_batch_end(self, *args) -> None: ...


FALLBACKS = {
    "gradient clipping": ["+trainer.gradient_clip_val=1.0"],
    "accumulate_grad_batches": ["+trainer.accumulate_grad_batches=2"],
    "val_check_interval": ["+trainer.val_check_interval=0.5"],
    "limit_train_batches": ["+trainer.limit_train_batches=4"],
    "data.loader=torch": ["data.loader=torch"],
    "task.lean_step=false": ["task.lean_step=false"],
    "ModelCheckpoint": [
        "+callbacks.steps._target_=lightning.pytorch.callbacks.ModelCheckpoint",
        "+callbacks.steps.every_n_train_steps=5",
    ],
    "EveryBatch": [],
}


@pytest.mark.parametrize("need", FALLBACKS)
def test_what_needs_every_batch_falls_back_or_refuses(tmp_path, tiny_data_dir, capfd, need):
    base = tiny_mnist(tiny_data_dir, "trainer.max_epochs=1", *FALLBACKS[need])
    extra = [EveryBatch()] if need == "EveryBatch" else []
    cfg = compose([*base, "task.steps_per_execution=auto"], output_dir=str(tmp_path / "auto"))
    seen = Seen()
    training.train(cfg, extra_callbacks=[seen, *extra])
    assert seen.steps_per_chunk == 1
    lines = [line for line in capfd.readouterr().err.splitlines() if "per Lightning call" in line]
    assert len(lines) == 1 and need in lines[0], lines

    cfg = compose([*base, "task.steps_per_execution=4"], output_dir=str(tmp_path / "four"))
    with pytest.raises(
        ConfigError, match=f"steps_per_execution=4 cannot be honoured because of .*{need}"
    ):
        training.train(cfg, extra_callbacks=extra)


class StepHooks(L.Callback):
    """Counts the per-step hooks and what ``trainer.callbacks`` holds around the steps."""

    def __init__(self) -> None:
        self.calls = {hook: 0 for hook in execution.STEP_HOOKS}
        self.listed_at_epoch_end: list[list[str]] = []

    def on_before_backward(self, trainer, pl_module, loss) -> None:
        self.calls["on_before_backward"] += 1

    def on_after_backward(self, trainer, pl_module) -> None:
        self.calls["on_after_backward"] += 1

    def on_before_optimizer_step(self, trainer, pl_module, optimizer) -> None:
        self.calls["on_before_optimizer_step"] += 1
        # Lightning's own gradients are here, as without the narrowed list.
        assert all(p.grad is not None for p in pl_module.parameters() if p.requires_grad)

    def on_train_epoch_end(self, trainer, pl_module) -> None:
        self.listed_at_epoch_end.append([type(c).__name__ for c in trainer.callbacks])


@pytest.mark.parametrize("steps", ["1", "4"])
def test_step_hooks_reach_the_callbacks_that_have_them(tmp_path, tiny_data_dir, steps) -> None:
    """Within a step only callbacks overriding a step hook are listed; every hook still runs."""
    hooks, seen = StepHooks(), Seen()
    overrides = tiny_mnist(
        tiny_data_dir, "trainer.max_epochs=2", f"task.steps_per_execution={steps}"
    )
    cfg = compose(overrides, output_dir=str(tmp_path / "run"))
    training.train(cfg, extra_callbacks=[seen, hooks])
    assert seen.global_step == 22  # 2 epochs of 11 batches
    assert hooks.calls == dict.fromkeys(execution.STEP_HOOKS, 22)
    assert execution.step_hook_callbacks(_trainer_with(seen, hooks)) == [hooks]
    for listed in hooks.listed_at_epoch_end:  # the whole list outside the steps
        assert {"Seen", "StepHooks", "ModelCheckpoint", "LastCheckpoint"} <= set(listed)


class BarWithinSteps(L.Callback):
    """Which progress bar the trainer names while a step runs (``on_before_backward``)."""

    def __init__(self) -> None:
        self.bars: set[str] = set()

    def on_before_backward(self, trainer, pl_module, loss) -> None:
        self.bars.add(type(trainer.progress_bar_callback).__name__)


@pytest.mark.parametrize("bar", ["ProgressBar", "RichProgressBar"])
def test_the_progress_bar_stays_listed_within_steps(tmp_path, tiny_data_dir, bar) -> None:
    """Lightning's RichProgressBar reads ``trainer.progress_bar_callback`` from its refresh
    thread at any moment; with the list narrowed for a step it found none, and the thread
    died on an AssertionError (a traceback on stderr, the bar frozen)."""
    from lightning.pytorch.callbacks import RichProgressBar

    seen, probe = Seen(), BarWithinSteps()
    overrides = tiny_mnist(tiny_data_dir, "trainer.max_epochs=1")
    overrides.remove("+trainer.enable_progress_bar=false")
    extra: list[L.Callback] = [seen, probe]
    if bar == "ProgressBar":  # litnets' own bar, from the config
        overrides.remove("callbacks.progress_bar=null")
    else:  # Lightning's, in place of litnets'
        extra.append(RichProgressBar())
    training.train(compose(overrides, output_dir=str(tmp_path / "run")), extra_callbacks=extra)
    assert seen.global_step == 11
    assert probe.bars == {bar}


class PluginSeen(L.Callback):
    """The precision plugin the training steps ran with, and the one left after the fit."""

    def on_train_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self.during = type(trainer.strategy.precision_plugin)

    def on_fit_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self.after = type(trainer.strategy.precision_plugin)


def test_step_hooks_nobody_has_are_not_dispatched(tmp_path, tiny_data_dir) -> None:
    """The quiet plugin where no callback has a step hook, Lightning's where one has: the same
    weights and logged rows bit for bit, and Lightning's plugin back after the fit."""
    base = tiny_mnist(tiny_data_dir, "trainer.max_epochs=2")
    summaries, probes = {}, {}
    for name, extra in (("quiet", []), ("hooked", [StepHooks()])):
        probes[name] = PluginSeen()
        cfg = compose(base, output_dir=str(tmp_path / name))
        summaries[name] = training.train(cfg, extra_callbacks=[probes[name], *extra])
    assert (probes["quiet"].during, probes["hooked"].during) == (QuietStepHooks, Precision)
    assert probes["quiet"].after is Precision
    assert_same_run(tmp_path, "quiet", "hooked", summaries)


class LeanModule(L.LightningModule):
    def __init__(self) -> None:
        super().__init__()
        self.automatic_optimization = False


class LeanModuleWithHook(LeanModule):
    def on_after_backward(self) -> None:
        pass


@pytest.mark.parametrize(
    ("module", "callbacks", "expected"),
    [
        (LeanModule, [], QuietStepHooks),
        (LeanModuleWithHook, [], Precision),  # the task's own hook
        (LeanModule, [StepHooks()], Precision),  # a callback's
        (L.LightningModule, [], Precision),  # automatic optimization (clipping acts there)
    ],
)
def test_the_quiet_plugin_only_where_nothing_has_a_step_hook(module, callbacks, expected) -> None:
    trainer = _trainer_with(*callbacks)
    execution.quiet_step_hooks(trainer, module())
    assert type(trainer.strategy.precision_plugin) is expected
    execution.quiet_step_hooks(trainer, LeanModuleWithHook())  # a later fit decides afresh
    assert type(trainer.strategy.precision_plugin) is Precision
    execution.quiet_step_hooks(trainer, LeanModule())
    execution.restore_step_hooks(trainer)
    assert type(trainer.strategy.precision_plugin) is Precision


def test_other_precisions_keep_their_own_plugin() -> None:
    trainer = L.Trainer(precision="64-true", logger=False, enable_progress_bar=False)
    plugin = trainer.strategy.precision_plugin
    assert isinstance(plugin, DoublePrecision)
    execution.quiet_step_hooks(trainer, LeanModule())
    assert trainer.strategy.precision_plugin is plugin


def _trainer_with(*callbacks: L.Callback) -> L.Trainer:
    return L.Trainer(callbacks=list(callbacks), logger=False, enable_progress_bar=False,
                     enable_model_summary=False, enable_checkpointing=False)  # fmt: skip


def test_checkpoint_triggers_are_read_from_lightning() -> None:
    """``acts_on_every_batch`` reads two private ModelCheckpoint attributes: pin them."""
    from datetime import timedelta

    assert not execution.acts_on_every_batch(ModelCheckpoint())
    assert not execution.acts_on_every_batch(ModelCheckpoint(every_n_epochs=3))
    assert execution.acts_on_every_batch(ModelCheckpoint(every_n_train_steps=5))
    assert execution.acts_on_every_batch(ModelCheckpoint(train_time_interval=timedelta(1)))
    assert not execution.acts_on_every_batch(ProgressBar())
    assert execution.acts_on_every_batch(EveryBatch())


@pytest.mark.parametrize("value", [0, -2, "fast", 2.5, True])
def test_a_bad_steps_per_execution_is_one_line(tmp_path, value) -> None:
    result = run_script("train.py", f"task.steps_per_execution={value}", log_dir=tmp_path)
    assert result.returncode == 2
    assert (
        result.stderr.strip()
        .splitlines()[-1]
        .startswith(
            "litnets: error: task.steps_per_execution must be a positive integer, auto or epoch"
        )
    )
    assert not run_dirs(tmp_path)
