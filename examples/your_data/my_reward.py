"""A reward of your own for `rl.rewards` (`examples/your_data/my_reward.py:brevity`), with TRL's reward signature:
the completions plus the prompts and the data set's columns as keyword lists (`answer`, `kind`, ...); one float
per completion."""


def brevity(completions, **kwargs) -> list[float]:
    """0.2 for a completion of at most 40 words, else 0: keeps the reasoning short."""
    texts = [c[-1]["content"] if isinstance(c, list) else str(c) for c in completions]  # chat messages or text
    return [0.2 if len(text.split()) <= 40 else 0.0 for text in texts]
