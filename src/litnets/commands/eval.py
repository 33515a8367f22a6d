"""``litnets eval ckpt_path=<run dir or .ckpt>``: test a trained model again."""

from __future__ import annotations

from omegaconf import DictConfig

from litnets.commands.base import hydra_command, run


@hydra_command("eval")
def main(cfg: DictConfig) -> None:
    from litnets.inference import evaluate
    from litnets.record import command_line

    summary = evaluate(cfg, command=command_line("eval"))
    metrics = "  ".join(f"{k}={v:.4f}" for k, v in summary["test"].items())
    print(f"litnets: evaluated {summary['checkpoint']}\n  test         {metrics}")
    print(f"  metrics.json {summary['run_dir']}/metrics.json")


if __name__ == "__main__":
    run(main, "eval")
