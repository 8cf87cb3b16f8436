"""TRL's trainers as the stages run them (reasoning_lab.trl_trainers): the private TRL methods they override still
exist in the installed TRL, so does the private state they write to, and the batch surgery of dynamic sampling keeps every row aligned."""

import inspect
import re

import pytest
import torch
import trl

from reasoning_lab.trl_trainers import OVERRIDDEN, PRIVATE_STATE


@pytest.mark.parametrize("trainer, method", [(t, m) for t, methods in OVERRIDDEN.items() for m in methods],
                         ids=lambda x: getattr(x, "__name__", x))
def test_the_overridden_private_trl_methods_still_exist(trainer, method):
    assert callable(getattr(trainer, method, None)), (
        f"trl {trl.__version__}: {trainer.__name__}.{method} is gone, and reasoning_lab.trl_trainers overrides it; "
        f"pin trl to the version in pyproject.toml, or port the override to the new TRL")


def test_every_subclass_overrides_what_the_table_says():
    from reasoning_lab.trl_trainers import GRPO, RLOO, OrderedSFTTrainer

    for ours in (GRPO, RLOO, OrderedSFTTrainer):
        (base,) = [b for b in OVERRIDDEN if issubclass(ours, b)]
        assert all(getattr(ours, m) is not getattr(base, m) for m in OVERRIDDEN[base])


def test_merge_groups_repads_prompts_left_and_completions_right():

    from reasoning_lab.trl_trainers import informative, merge_groups

    a = {"prompt_ids": torch.tensor([[0, 5], [0, 5], [6, 7], [6, 7]]), "prompt_mask": torch.tensor([[0, 1]] * 2 + [[1, 1]] * 2),
         "completion_ids": torch.tensor([[1], [2], [3], [4]]), "completion_mask": torch.ones(4, 1, dtype=torch.long),
         "advantages": torch.tensor([0.0, 0.0, 1.0, -1.0]), "num_items_in_batch": torch.tensor(4)}
    b = {"prompt_ids": torch.tensor([[8], [8]]), "prompt_mask": torch.tensor([[1], [1]]),
         "completion_ids": torch.tensor([[9, 9, 9], [9, 3, 0]]), "completion_mask": torch.tensor([[1, 1, 1], [1, 1, 0]]),
         "advantages": torch.tensor([0.5, -0.5]), "num_items_in_batch": torch.tensor(5)}
    assert informative(a["advantages"], 2).tolist() == [False, True]
    merged = merge_groups([a, b], [(0, 1), (1, 0)], n=2, pad_id=0)
    assert merged["prompt_ids"].tolist() == [[6, 7], [6, 7], [0, 8], [0, 8]]
    assert merged["prompt_mask"].tolist() == [[1, 1], [1, 1], [0, 1], [0, 1]]
    assert merged["completion_ids"].tolist() == [[3, 0, 0], [4, 0, 0], [9, 9, 9], [9, 3, 0]]
    assert merged["completion_mask"].tolist() == [[1, 0, 0], [1, 0, 0], [1, 1, 1], [1, 1, 0]]
    assert merged["advantages"].tolist() == [1.0, -1.0, 0.5, -0.5]
    assert int(merged["num_items_in_batch"]) == 7


@pytest.mark.parametrize("trainer, attribute", [(t, a) for t, names in PRIVATE_STATE.items() for a in names],
                         ids=lambda x: getattr(x, "__name__", x))
def test_the_private_trl_state_used_still_exists(trainer, attribute):
    assert callable(getattr(trainer, attribute, None)) or f"self.{attribute} =" in inspect.getsource(trainer.__init__), (
        f"trl {trl.__version__}: {trainer.__name__} no longer has {attribute}, which reasoning_lab.trl_trainers "
        f"uses; pin trl to the version in pyproject.toml, or port the code to the new TRL")


def test_every_private_trl_name_touched_is_listed():
    """Each `self._name` in reasoning_lab/trl_trainers.py is ours, an overridden method, or listed private state."""
    from reasoning_lab import trl_trainers

    source = inspect.getsource(trl_trainers)
    touched = set(re.findall(r"self\.(_[a-z]\w*)", source))
    ours = set(re.findall(r"self\.(_[a-z]\w*) =", source)) | set(re.findall(r"def (_[a-z]\w*)\(", source))
    listed = {name for names in [*OVERRIDDEN.values(), *PRIVATE_STATE.values()] for name in names}
    assert touched - ours <= listed, f"private TRL state touched but not in PRIVATE_STATE: {touched - ours - listed}"
