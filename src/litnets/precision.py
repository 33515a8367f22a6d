"""The precision plugin of a lean 32-bit fit: Lightning's, minus step hooks nobody has.

``manual_backward`` and the wrapped optimizer's ``step`` go through the strategy's precision
plugin, and Lightning's 32-bit ``Precision`` dispatches ``on_before_backward``,
``on_after_backward`` and ``on_before_optimizer_step`` there, to the callbacks and to the
module, each call through Lightning's hook machinery (a debug-log line built, the module's
current hook name set and reset, a profiler context). Where neither a callback nor the task
overrides any of them, that is six calls of empty methods a step: ≈ 1.4 % of a CPU MNIST
epoch (1.32-1.53 % in three paired-epoch runs, a null run 0.33 %).

``QuietStepHooks`` is that ``Precision`` without the dispatch: the same backward
(``LightningModule.backward``), the same optimizer ``step`` with the same closure, and the
strategy's own work around both (DDP's gradient sync) untouched. Gradient clipping, the
other thing Lightning's plugin does after the closure, acts under automatic optimization
only, which keeps Lightning's plugin. ``litnets.tasks.execution.quiet_step_hooks`` chooses
it for each fit, only in place of exactly Lightning's ``Precision``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import lightning as L
from lightning.pytorch.plugins.precision import Precision
from torch import Tensor


class QuietStepHooks(Precision):
    """Lightning's 32-bit precision, for fits where no callback and not the task overrides
    a backward or optimizer-step hook."""

    def pre_backward(self, tensor: Tensor, module: L.LightningModule) -> Tensor:  # type: ignore[override]
        return tensor

    def post_backward(self, tensor: Tensor, module: L.LightningModule) -> Tensor:  # type: ignore[override]
        return tensor.detach()  # as Lightning's: the returned loss holds no graph

    def optimizer_step(  # type: ignore[override]
        self, optimizer: Any, model: L.LightningModule, closure: Callable[[], Any], **kwargs: Any
    ) -> Any:
        return optimizer.step(closure=closure, **kwargs)
