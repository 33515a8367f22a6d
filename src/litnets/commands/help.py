"""``litnets <command> --help``: the groups and settings a command takes, from its configs.

Hydra's own ``--help`` would list every group, internal ones included, and print the whole
composed config; this lists what a user chooses from (also from ``--config-dir`` and
``$LITNETS_CONFIG_DIR``), and says which data × model pairs bring tutorial settings.
``--hydra-help`` still shows Hydra's.
"""

from __future__ import annotations

from typing import Any

from omegaconf import DictConfig, OmegaConf

from litnets.commands import COMMANDS
from litnets.config import INTERNAL_GROUPS, Configs, open_configs
from litnets.overrides import CommandLine

EXAMPLES = {
    "train": [
        "litnets train                                     # Iris MLP, the default",
        "litnets train model=mlp data=mnist optimizer=adam optimizer.lr=1e-3",
        "litnets train experiment=mnist_mlp --cfg job      # the composed config; nothing runs",
        "litnets train -m optimizer=sgd,adam 'optimizer.lr=choice(0.01,0.1)'   # 4 jobs",
        "litnets train debug=fdr experiment=mnist_mlp       # one batch of each split",
        "litnets train resume=logs/train/runs/<run>        # continue an interrupted run",
    ],
    "eval": ["litnets eval ckpt_path=logs/train/runs/<run>"],
    "predict": [
        "litnets predict ckpt_path=<run> input=test num_samples=5",
        "litnets predict ckpt_path=<run> input=digits/      # a folder of images",
    ],
    "export": ["litnets export ckpt_path=<run>/checkpoints/best.ckpt"],
    "benchmark": ["litnets benchmark epochs=3", "litnets benchmark trainer=gpu"],
}

FLAGS = """\
flags (Hydra's own):
  -m, --multirun      a sweep: a,b  choice(a,b)  range(1,5)  glob(m*)  (interval(...) with Optuna)
  --cfg job           print the composed config and stop (--cfg hydra|all, add --resolve)
  --info              Hydra's view: search path, defaults tree, config sources
  --config-dir DIR    add a directory of your own configs (or list them in $LITNETS_CONFIG_DIR)
  --hydra-help        Hydra's own help"""


def _yaml_value(value: Any) -> str:
    text = OmegaConf.to_yaml({"v": value}).strip()
    return text[len("v: ") :] if text.startswith("v: ") else text


def _settings(cfg: DictConfig, groups: set[str], prefix: str = "") -> list[str]:
    """``key=value`` for every setting that is not a group, nested ones with dots."""
    found = []
    for key in cfg:
        name = f"{prefix}{key}"
        if name in groups or name in ("task_name", "hydra", "tutorial"):
            continue
        node = cfg._get_node(key)
        if OmegaConf.is_dict(node) and len(node):
            found += _settings(node, groups, f"{name}.")
        else:
            raw = OmegaConf.to_container(cfg, resolve=False)[key]
            found.append(f"{name}={_yaml_value(raw)}")
    return found


def _pairs(configs: Configs) -> list[str]:
    """``mnist × mlp`` for each recipe named ``<data>_<model>``."""
    data, models = configs.options("data"), configs.options("model")
    names = {f"{d}_{m}": f"{d} × {m}" for d in data for m in models}
    return [names[r] for r in configs.options("recipe") if r in names]


def _columns(items: list[str], indent: str = "  ", width: int = 96) -> list[str]:
    lines, line = [], indent
    for item in items:
        if len(line) + len(item) > width and line.strip():
            lines.append(line.rstrip())
            line = indent
        line += item + "  "
    return [*lines, line.rstrip()] if line.strip() else lines


def command_help(line: CommandLine) -> str:
    """The help text of ``litnets <command>``, for the configs this command line sees."""
    name = "eval" if line.config_name == "eval" else line.config_name
    text = [
        f"usage: litnets {name} [group=option ...] [key=value ...] [flags]",
        "",
        f"litnets {name}: {COMMANDS.get(name, '')}. Settings come from conf/{line.config_name}.yaml.",
    ]
    with open_configs(line.config_name, line.config_dirs) as configs:
        top = [g for g in configs.groups() if "/" not in g]
        shown = [g for g in top if not g.startswith(INTERNAL_GROUPS)]
        cfg = configs.compose([])
        if shown:
            text += ["", "config groups (group=option):"]
            text += [f"  {group}: {', '.join(configs.options(group))}" for group in shown]
        settings = _settings(cfg, set(top))
        if settings:
            text += ["", "settings (key=value; any key of the config, nested with dots):"]
            text += _columns(settings)
        if line.config_name == "train":
            text += [
                "",
                "tutorial settings, applied whenever one of these data × model pairs is chosen",
                "(conf/recipe/; `--cfg job` shows what a pair brings):",
                *_columns(_pairs(configs)),
            ]
    text += ["", FLAGS]
    if name in EXAMPLES:
        text += ["", "examples:", *(f"  {example}" for example in EXAMPLES[name])]
    return "\n".join(text)
