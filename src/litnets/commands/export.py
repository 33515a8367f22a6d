"""``litnets export ckpt_path=<run dir or .ckpt>``: model.pt + model.json (+ model.pt2)."""

from __future__ import annotations

from omegaconf import DictConfig

from litnets.commands.base import hydra_command, run


@hydra_command("export")
def main(cfg: DictConfig) -> None:
    from litnets.inference import export
    from litnets.record import command_line

    for kind, path in export(cfg, command=command_line("export"))["files"].items():
        print(f"  {kind:<13}{path}")
    print("litnets: load with `litnets.models.saved.load(dir)` (torch + litnets.models only)")


if __name__ == "__main__":
    run(main, "export")
