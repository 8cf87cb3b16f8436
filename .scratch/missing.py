import sys
from pathlib import Path

from omegaconf import OmegaConf

sys.path.insert(0, ".")
from reasoning_lab.config import register_configs
from tests.conftest import make_config

register_configs()
combos=[[]]
for group in sorted(p for p in Path("conf").iterdir() if p.is_dir() and p.name not in ("hydra","hparams_search")):
    for option in sorted(group.glob("*.yaml")):
        combos.append([f"{group.name}={option.stem}"])
for preset in sorted(Path("experiments/presets/experiment").glob("*.yaml")):
    combos.append([f"experiment={preset.stem}"])
for o in combos:
    try:
        cfg = make_config(*o)
        m = sorted(OmegaConf.missing_keys(cfg))
        if m:
            print(o, m)
    except Exception as e:
        print(o, "ERROR", type(e).__name__, str(e).splitlines()[0][:300])
