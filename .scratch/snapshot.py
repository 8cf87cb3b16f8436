"""Compose every group option and preset; dump the resolved configs (for before/after comparison)."""
import json
import sys
from pathlib import Path

from omegaconf import OmegaConf

sys.path.insert(0, ".")
from reasoning_lab.config import register_configs
from tests.conftest import make_config

register_configs()
CONF = Path("conf")
combos = [[]]
for group in sorted(p for p in CONF.iterdir() if p.is_dir() and p.name not in ("hydra",)):
    for option in sorted(group.glob("*.yaml")):
        if group.name == "hparams_search":
            continue
        combos.append([f"{group.name}={option.stem}"])
for preset in sorted(Path("experiments/presets/experiment").glob("*.yaml")):
    combos.append([f"experiment={preset.stem}"])
out = {}
for overrides in combos:
    cfg = make_config(*overrides)
    out[" ".join(overrides) or "default"] = OmegaConf.to_container(cfg, resolve=False)
json.dump(out, open(sys.argv[1], "w"), indent=1, sort_keys=True, default=str)
print(len(out), "configs")
