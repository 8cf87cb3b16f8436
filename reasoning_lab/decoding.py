"""Decoding: batched generation from chat prompts.

Prompts are encoded once, sorted by length and left-padded into batches; `k` samples per prompt
come from one `generate` call (`num_return_sequences`). Generation stops at the end-of-turn token
or at `max_new_tokens`; each completion records whether it hit that cap.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch


@dataclass
class Completion:
    text: str
    tokens: int
    # stopped by max_new_tokens rather than by the end-of-turn token
    hit_cap: bool


@torch.no_grad()
def generate(
    model,
    tokenizer,
    prompts: list[list[dict]],
    max_new_tokens: int,
    k: int = 1,
    do_sample: bool = False,
    temperature: float = 1.0,
    top_p: float = 1.0,
    batch_size: int = 8,
) -> list[list[Completion]]:
    """`k` completions for each chat prompt, in the order of `prompts`."""
    encoded = [tokenizer.apply_chat_template(p, add_generation_prompt=True)["input_ids"] for p in prompts]
    order = sorted(range(len(prompts)), key=lambda i: len(encoded[i]), reverse=True)
    results: list[list[Completion]] = [[] for _ in prompts]
    eos = tokenizer.eos_token_id
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else eos
    device = next(model.parameters()).device
    was_training = model.training
    model.eval()
    sampling = dict(do_sample=True, temperature=temperature, top_p=top_p) if do_sample else dict(do_sample=False)
    for start in range(0, len(order), batch_size):
        batch = order[start : start + batch_size]
        width = max(len(encoded[i]) for i in batch)
        input_ids = torch.full((len(batch), width), pad, dtype=torch.long)
        attention = torch.zeros((len(batch), width), dtype=torch.long)
        for row, i in enumerate(batch):
            input_ids[row, width - len(encoded[i]) :] = torch.tensor(encoded[i])
            attention[row, width - len(encoded[i]) :] = 1
        output = model.generate(
            input_ids=input_ids.to(device),
            attention_mask=attention.to(device),
            max_new_tokens=max_new_tokens,
            num_return_sequences=k,
            eos_token_id=eos,
            pad_token_id=pad,
            **sampling,
        )
        new = output[:, width:].cpu()
        for row, ids in enumerate(new):
            ids = ids.tolist()
            ended = eos in ids
            length = ids.index(eos) + 1 if ended else len(ids)
            text = tokenizer.decode(ids[:length], skip_special_tokens=True)
            results[batch[row // k]].append(Completion(text=text, tokens=length, hit_cap=not ended))
    model.train(was_training)
    return results
