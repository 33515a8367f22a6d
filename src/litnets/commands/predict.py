"""``litnets predict ckpt_path=... input=...``: predictions with top-k probabilities.

``input`` is ``test`` (samples of the test set), an image file or folder (image models),
or a CSV of feature rows (tabular and regression models).
"""

from __future__ import annotations

from omegaconf import DictConfig

from litnets.commands.base import hydra_command, run


@hydra_command("predict")
def main(cfg: DictConfig) -> None:
    from litnets.inference import predict
    from litnets.record import command_line

    summary = predict(cfg, command=command_line("predict"))
    for row in summary["predictions"]:
        print("  ".join(f"{key}={value}" for key, value in row.items()))
    if "accuracy" in summary:
        print(f"litnets: accuracy {summary['accuracy']:.4f} on the inputs with known labels")
    print(f"litnets: {len(summary['predictions'])} predictions in {summary['predictions_csv']}")


if __name__ == "__main__":
    run(main, "predict")
