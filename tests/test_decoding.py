"""Decoding (reasoning_lab.decoding): the vote, pass@k, batched generation and self-consistency."""

import math

import pytest
import torch

from reasoning_lab.decoding import (
    answer_line_complete,
    generate,
    guess_kind,
    majority_vote,
    pass_at_k,
    self_consistency,
)
from reasoning_lab.model import load_model, load_tokenizer
from tests.helpers import make_config, tiny_model


def test_majority_vote():
    assert majority_vote(["3", "4", "3"]) == "3"
    assert majority_vote(["4", "3", "3", "4"]) == "4"  # tie: first seen
    assert majority_vote([None, None, "7"]) == "7"  # None never wins while an answer exists
    assert majority_vote([None, "2", None, None, "5"]) == "2"
    assert majority_vote([None, None]) is None and majority_vote([]) is None


@pytest.mark.parametrize(
    "n, c, k, expected",
    [(8, 0, 1, 0.0), (8, 8, 4, 1.0), (8, 2, 1, 0.25), (4, 1, 2, 0.5), (5, 2, 2, 0.7), (10, 3, 5, 1 - 21 / 252),
     (4, 3, 2, 1.0)],
)
def test_pass_at_k_matches_hand_computed_values(n, c, k, expected):
    # pass@k = 1 - C(n-c, k) / C(n, k); e.g. n=5, c=2, k=2: 1 - C(3,2)/C(5,2) = 1 - 3/10
    assert pass_at_k(n, c, k) == pytest.approx(expected)
    assert pass_at_k(n, c, k) == pytest.approx(1 - math.comb(n - c, k) / math.comb(n, k))


def test_pass_at_k_needs_enough_samples():
    with pytest.raises(ValueError):
        pass_at_k(2, 1, 4)


@pytest.mark.parametrize(
    "question, kind",
    [("A train travels 60 km in 1.5 hours. What is its speed in km/h?", "number"),
     ("Is 17 a prime number?", "yesno"), ("Would a dog fit in a shoebox? Answer yes or no.", "yesno"),
     ("What is 2+2?\nOptions: A)3 B)4 C)5 D)6 E)7", "choice")],
)
def test_guess_kind(question, kind):
    assert guess_kind(question) == kind


@pytest.fixture(scope="module")
def tiny():
    _, model, tokenizer = tiny_model(trainable=False)
    return model, tokenizer


def test_batched_greedy_equals_one_at_a_time(tiny):
    model, tokenizer = tiny
    prompts = [[{"role": "user", "content": q}] for q in ("Hi", "What is 12 + 30 - 7?", "Is ice cold? Answer yes.")]
    batched = generate(model, tokenizer, prompts, max_new_tokens=12, batch_size=3)
    single = [generate(model, tokenizer, [p], max_new_tokens=12)[0] for p in prompts]
    assert [b[0].text for b in batched] == [s[0].text for s in single]
    assert all(b[0].hit_cap == (b[0].tokens == 12) for b in batched)
    assert generate(model, tokenizer, [], max_new_tokens=12) == []  # e.g. no problem asked without the prompt


@pytest.mark.parametrize("k", [1, 2])
def test_rows_that_join_a_running_batch_generate_what_they_generate_alone(k):
    """Six prompts with different budgets through two rows of room: a row that ends frees its place and the next
    prompt's prefill is written into it while the other row goes on, and the last row runs in a cache shrunk to
    it: each completion is what the prompt gives generated alone (greedy, k=1, float32); with k=2 samples every
    prompt gets both, each within its own budget."""
    from reasoning_lab.model import load_base_model

    cfg = make_config("model.dtype=float32")  # the embedded model: the tiny one writes the same token throughout
    model, tokenizer = load_base_model(cfg.model), load_tokenizer(cfg.model)
    questions = ["Hi", "What is 12 + 30 - 7?", "Is ice cold? Answer yes.", "a", "a b c d e f g h i j", "Why?"]
    prompts = [[{"role": "user", "content": q}] for q in questions]
    budgets = [9, 3, 14, 6, 11, 2]
    if k == 1:
        joined = generate(model, tokenizer, prompts, budgets, batch_size=2)
        alone = [generate(model, tokenizer, [p], b)[0] for p, b in zip(prompts, budgets)]
        assert [[(c.text, c.tokens, c.hit_cap) for c in group] for group in joined] == [
            [(c.text, c.tokens, c.hit_cap) for c in group] for group in alone]
    else:
        out = generate(model, tokenizer, prompts, budgets, k=2, do_sample=True, temperature=1.0, batch_size=4)
        assert [len(group) for group in out] == [2] * 6
        assert all(c.tokens <= b and (c.tokens == b or not c.hit_cap) for group, b in zip(out, budgets) for c in group)


def test_k_samples_come_back_per_prompt_in_order(tiny):
    model, tokenizer = tiny
    torch.manual_seed(0)
    prompts = [[{"role": "user", "content": q}] for q in ("a", "a much longer question than the first one")]
    out = generate(model, tokenizer, prompts, max_new_tokens=6, k=3, do_sample=True, temperature=1.0)
    assert [len(group) for group in out] == [3, 3]


def test_self_consistency_votes_over_its_paths(tiny):
    model, tokenizer = tiny
    torch.manual_seed(0)
    result = self_consistency(model, tokenizer, "What is 2 + 2?", k=4, max_new_tokens=8)
    assert len(result["paths"]) == 4 and sum(result["votes"].values()) == 4
    assert result["answer"] == majority_vote([p["answer"] for p in result["paths"]])
    assert result["kind"] == "number"


@pytest.mark.parametrize("temperature,top_p,candidates", [(0.7, 0.95, 64), (1.0, 0.5, 64), (0.7, 0.95, 4),
                                                          (1.3, 1.0, 64)])
def test_nucleus_keeps_what_transformers_keeps_with_the_same_probabilities(temperature, top_p, candidates):
    from transformers.generation.logits_process import TemperatureLogitsWarper, TopPLogitsWarper

    from reasoning_lab.decoding import nucleus

    torch.manual_seed(0)
    scores = torch.randn(6, 500) * torch.tensor([[0.5], [1.0], [2.0], [4.0], [8.0], [0.1]])
    warped = TopPLogitsWarper(top_p)(None, TemperatureLogitsWarper(temperature)(None, scores))
    expected = warped.softmax(-1)
    ids, probs = nucleus(scores, temperature, top_p, candidates)
    ours = torch.zeros_like(scores).scatter_add_(1, ids, probs)
    assert torch.allclose(ours, expected, atol=1e-6)
    assert ((ours > 0) == (expected > 0)).all()  # the same tokens kept, row by row


def test_sampled_tokens_come_from_the_nucleus_in_proportion():
    from reasoning_lab.decoding import choose

    torch.manual_seed(0)
    scores = torch.tensor([[2.0, 1.0, 0.5, -3.0, -4.0]]).repeat(20000, 1)
    counts = torch.bincount(choose(scores, (1.0, 0.9)), minlength=5).float() / 20000
    p = scores[0].softmax(-1)
    kept = p[:3] / p[:3].sum()  # 0.63 + 0.23 = 0.86 < 0.9, so the third token is in the nucleus, the rest are not
    assert torch.allclose(counts[:3], kept, atol=0.015) and counts[3:].sum() == 0
    assert choose(scores[:3], None).tolist() == [0, 0, 0]  # greedy


def test_a_row_whose_nucleus_is_wider_than_the_candidates_draws_from_all_of_it():
    from reasoning_lab.decoding import choose

    torch.manual_seed(0)
    scores = torch.stack([torch.tensor([5.0, 1.0] + [-9.0] * 98), torch.zeros(100)])
    draws = torch.stack([choose(scores, (1.0, 0.95)) for _ in range(400)])
    assert set(draws[:, 0].tolist()) <= {0, 1} and len(set(draws[:, 1].tolist())) > 50


def test_each_of_k_samples_continues_its_own_prompt():
    """At a temperature near 0 a sample is its prompt's greedy completion: a sample given another prompt's
    cache (a wrong repeat of the shared prefill) would show up as another prompt's text. The embedded model,
    since tiny_random answers every prompt alike; in float32, where a prompt's logits do not depend on the batch
    it shares (in bfloat16 near-ties can flip with the padding)."""
    cfg = make_config("model=smollm2_135m", "model.dtype=float32")
    model, tokenizer = load_model(cfg.model, trainable=False), load_tokenizer(cfg.model)
    prompts = [[{"role": "user", "content": q}] for q in ("Hi", "What is 12 + 30 - 7?", "Is ice cold? Answer yes.",
                                                          "Name three colours of the rainbow, please.")]
    greedy = [c[0].text for c in generate(model, tokenizer, prompts, max_new_tokens=10, batch_size=8)]
    assert len(set(greedy)) == 4  # the prompts are told apart by their completions
    sampled = generate(model, tokenizer, prompts, max_new_tokens=10, k=3, do_sample=True, temperature=1e-4,
                       top_p=0.95, batch_size=6)  # 2 prompts x 3 samples per call
    assert [[c.text for c in group] for group in sampled] == [[text] * 3 for text in greedy]


@pytest.mark.parametrize("text, complete", [
    ("<think>\n2 + 2 = 4\n</think>\n4\n", True),
    ("<think>\n2 + 2 = 4\n</think>\n4", False),  # the answer line may still go on
    ("<think>\n2 + 2 = 4\n</think>\n\n", False),  # no answer yet
    ("<think>\n2 + 2 = 4\n", False),
    ("12\nmore\n", False),  # no </think>: only the end of turn or the cap stops it
])
def test_answer_line_complete(text, complete):
    assert answer_line_complete(text) is complete


def test_generation_stops_at_the_end_of_the_answer_line(tiny):
    """Scripted completions through the real generate loop: a row that keeps writing after its answer line is cut
    right after that line (not capped), a row that ends its turn keeps its end, a row without </think> runs to
    the cap, and the rows are not mixed up; once two rows have ended, the last one runs in a cache of one row."""
    model, tokenizer = tiny
    eos = tokenizer.eos_token_id
    scripts = ["<think>\n2 + 2 = 4\n</think>\n4\n</think>\n4\n</think>\n4 4 4 4 4 4 4 4",
               "<think>\n3\n</think>\n7",
               "no think at all\nstill going" + " and on" * 30]
    forced = [tokenizer(s, add_special_tokens=False)["input_ids"] + [eos] for s in scripts]
    questions = ["a a a a a a a a", "a a a a", "a"]
    prompts = [[{"role": "user", "content": q}] for q in questions]
    lengths = [len(tokenizer.apply_chat_template(p, add_generation_prompt=True)["input_ids"]) for p in prompts]
    # a row's script: the one whose prompt length puts the row's last position at the current forward (the prefill
    # chooses token 0 of every row, each decode step the next; a row's position id is its column)
    seen = {"positions": None, "step": -1, "rows": []}

    def remember_positions(module, args, kwargs):
        seen["positions"] = kwargs["position_ids"][:, -1].tolist()
        seen["step"] += 1
        seen["rows"].append(len(seen["positions"]))

    def force(module, inputs, output):  # each forward picks every row's next scripted token
        logits = torch.full_like(output, -1e4)
        for row, position in enumerate(seen["positions"]):
            script = [i for i, n in enumerate(lengths) if position + 1 - n == seen["step"]]
            if script:  # (a free row's position is 0)
                ids = forced[script[0]]
                logits[row, -1, ids[min(seen["step"], len(ids) - 1)]] = 0.0
        return logits

    inner = model.get_base_model() if hasattr(model, "get_base_model") else model
    hooks = [inner.register_forward_pre_hook(remember_positions, with_kwargs=True),
             model.get_output_embeddings().register_forward_hook(force)]
    try:
        out = generate(model, tokenizer, prompts, max_new_tokens=24, batch_size=3)
    finally:
        for hook in hooks:
            hook.remove()
    first, second, third = (group[0] for group in out)
    assert first.text == "<think>\n2 + 2 = 4\n</think>\n4\n" and not first.hit_cap
    assert first.tokens == len(tokenizer(first.text, add_special_tokens=False)["input_ids"])
    assert second.text == "<think>\n3\n</think>\n7" and not second.hit_cap and second.tokens == len(forced[1])
    assert third.hit_cap and third.tokens == 24 and third.text.startswith("no think at all\nstill going")
    assert seen["rows"][0] == 3 and seen["rows"][-1] == 1  # the capped row ends alone


def test_progress_lines_count_prompts_done_up_to_all(tiny, caplog):
    model, tokenizer = tiny
    prompts = [[{"role": "user", "content": q}] for q in ("a", "b c", "d e f", "g", "h i", "j")]
    with caplog.at_level("INFO", logger="reasoning_lab.decoding"):
        generate(model, tokenizer, prompts, max_new_tokens=[3, 5, 2, 4, 6, 1], k=2, do_sample=True, batch_size=4,
                 progress="eval")
    lines = [r.getMessage() for r in caplog.records if r.getMessage().startswith("eval: ")]
    done = [int(line.split()[1].split("/")[0]) for line in lines]
    assert lines and all(line.endswith("tokens/s") and "/6 prompts, " in line for line in lines)
    assert done == sorted(done) and done[-1] == 6 and all(b - a >= 2 for a, b in zip(done, done[1:-1]))


def test_weighted_vote_and_when_a_vote_is_settled():
    from reasoning_lab.answers import settled, weighted_vote

    answers = ["7", "8", "7", None]
    assert weighted_vote(answers, [1, 1, 1, 1]) == majority_vote(answers) == "7"
    assert weighted_vote(answers, [0.2, 0.9, 0.3, 1.0]) == "8"  # one confident path outweighs two unsure ones
    assert weighted_vote(["7", "8"], [0.5, 0.5]) == "7" and weighted_vote([None, None], [1, 1]) is None
    assert settled(["7", "7", "7"], [1, 1, 1], left=2)  # 3 > 0 + 2: two more votes cannot change it
    assert not settled(["7", "7", "8"], [1, 1, 1], left=2)  # 2 > 1 + 2 fails: 8 could still win
    assert settled(["7", "7", "7", "8"], [1, 1, 1, 1], left=1) and not settled([None, None], [1, 1], left=1)
    assert not settled(["7", "7"], [0.4, 0.4], left=1)  # weights under 1: one more path could outweigh 0.8


def test_a_sampled_path_carries_the_mean_log_probability_of_its_tokens(tiny):
    """What the decode loop returns as `logprob` is the model's own mean log-probability of the sampled tokens
    (temperature 1), recomputed here by one forward pass over prompt + completion; greedy paths carry none."""
    from reasoning_lab.decoding import confidence

    model, tokenizer = tiny
    torch.manual_seed(0)
    prompt = [{"role": "user", "content": "What is 12 + 30 - 7?"}]
    (paths,) = generate(model, tokenizer, [prompt], max_new_tokens=6, k=3, do_sample=True, temperature=0.7)
    ids = tokenizer.apply_chat_template(prompt, add_generation_prompt=True)["input_ids"]
    checked = 0
    for path in paths:
        completion = tokenizer(path.text, add_special_tokens=False)["input_ids"]
        if tokenizer.decode(completion) != path.text or len(completion) != path.tokens:
            continue  # a path whose text does not re-tokenize to its own tokens (or that ended on the end token)
        with torch.no_grad():
            logits = model(input_ids=torch.tensor([ids + completion])).logits[0, len(ids) - 1 : -1].float()
        expected = logits.log_softmax(-1).gather(1, torch.tensor(completion)[:, None]).mean().item()
        assert path.logprob == pytest.approx(expected, abs=1e-3)
        assert 0 < confidence(path) <= 1
        checked += 1
    assert checked >= 2
    assert generate(model, tokenizer, [prompt], max_new_tokens=6)[0][0].logprob is None
