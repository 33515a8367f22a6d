"""The profiler a run has when none is asked for (``litnets.profilers.NoProfiler``)."""

from __future__ import annotations

from lightning.pytorch.profilers import PassThroughProfiler, SimpleProfiler

from litnets import build
from litnets.config import compose
from litnets.profilers import NoProfiler


def test_no_profiler_profiles_nothing_with_one_shared_context() -> None:
    profiler = NoProfiler()
    assert isinstance(profiler, PassThroughProfiler)  # what Lightning's default is
    with profiler.profile("[Callback]x.on_before_backward") as inside:
        assert inside is None
    assert profiler.profile("a") is profiler.profile("b")
    profiler.start("a"), profiler.stop("a")
    assert profiler.summary() == ""


def test_runs_get_it_unless_they_ask_for_a_profiler(tmp_path) -> None:
    def trainer_for(*overrides: str):
        cfg = compose(["trainer=cpu", *overrides], output_dir=str(tmp_path))
        return build.build_trainer(cfg, callbacks=[], loggers=[])

    assert type(trainer_for().profiler) is NoProfiler
    assert type(trainer_for("+trainer.profiler=null").profiler) is NoProfiler
    assert isinstance(trainer_for("debug=profiler").profiler, SimpleProfiler)
    assert isinstance(trainer_for("+trainer.profiler=simple").profiler, SimpleProfiler)
