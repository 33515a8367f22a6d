"""Plain attributes that a module writes on every training step, set without ``nn.Module``'s
registry checks.

``nn.Module.__setattr__`` checks every write against the module's parameters, buffers and
submodules (≈ 0.9 µs on the project's CPU, against ≈ 0.1 µs for a plain write). That is
nothing for a write per epoch and a measurable cost for the few attributes written many
times a step: Lightning sets ``_current_fx_name`` on the LightningModule twice per hook
dispatch (twelve writes per optimizer step through ``manual_backward`` and the wrapped
optimizer's ``step``, in fits where a callback or the task has a step hook: elsewhere
``litnets.precision.QuietStepHooks`` leaves the dispatch out), and torchmetrics' ``update``
writes ``_computed`` and ``_update_count`` on every call.

For a name that is never a parameter, buffer or submodule, ``nn.Module.__setattr__`` ends
in ``object.__setattr__`` anyway, whatever the value, so skipping the checks changes
nothing but the time (``tests/test_tasks.py`` checks both). The names are Lightning's and
torchmetrics' own (Lightning 2.x, torchmetrics 1.x); were one renamed, its writes would
simply take ``nn.Module``'s path again.
"""

from __future__ import annotations

from typing import Any, ClassVar

from torch import nn


class PlainAttributes(nn.Module):
    """Writes ``plain_attributes`` as ``object.__setattr__`` does; any other name as usual."""

    plain_attributes: ClassVar[frozenset[str]] = frozenset()

    def __setattr__(self, name: str, value: Any) -> None:
        if name in self.plain_attributes:
            object.__setattr__(self, name, value)
        else:
            super().__setattr__(name, value)
