"""One module per ``litnets`` command; each runs as ``__main__`` (``litnets.cli`` sees to it).

``python -m litnets.commands.train ...`` is ``litnets train ...``: Lightning starts the extra
ranks of a DDP run by re-running exactly that, so each command is a runnable module.
"""

COMMANDS: dict[str, str] = {
    "train": "train and test a model (every setting a Hydra override)",
    "eval": "test a trained model again: eval ckpt_path=<run dir or .ckpt>",
    "predict": "predict with a trained model: predict ckpt_path=... input=<images|csv|test>",
    "export": "write a trained model as model.pt + model.json (+ model.pt2)",
    "plot": "learning curves as PNG files: plot <run dir or logs dir> [--overlay]",
    "benchmark": "time litnets against the tutorial's loop and a plain PyTorch loop",
}
"""Command name → what it does, for ``litnets --help``; the module is ``commands.<name>``."""
