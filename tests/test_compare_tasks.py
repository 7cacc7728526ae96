"""`hfgpt.tasks`: the examples are right (checked by re-deriving each answer from its prompt), the token ids are
the tokenizer's, labels cover the answer only, and exact match equals greedy decoding."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

from hfgpt.data.finetuning import IGNORE_INDEX
from hfgpt.tasks import (
    TASKS,
    evaluation_examples,
    exact_match,
    example_text,
    get_task,
    pad_collator,
    score_task,
    task_tokenizer,
    training_rows,
)

lengths = st.integers(min_value=14, max_value=300)


def reversed_number(digits) -> int:
    return int("".join(digits)[::-1])


@given(st.integers(0, 2**32), lengths)
def test_examples_answer_their_prompt_and_fill_the_length(seed, length):
    rng = np.random.default_rng(seed)
    copy = TASKS["copy"].example(rng, length)
    assert copy.prompt[-1] == "=" and copy.answer == copy.prompt[:-1]
    assert len(copy) in (length - 1, length)  # 2n + 3 tokens
    reverse = TASKS["reverse"].example(rng, length)
    assert reverse.answer == tuple(reversed(reverse.prompt[:-1])) and len(reverse) in (length - 1, length)
    addition = TASKS["addition"].example(rng, length)
    plus, equals = addition.prompt.index("+"), addition.prompt.index("=")
    a, b = addition.prompt[:plus], addition.prompt[plus + 1 : equals]
    assert len(a) == len(b) == len(addition.answer) - 1 and length - 2 <= len(addition) <= length  # 3n + 5
    assert reversed_number(a) + reversed_number(b) == reversed_number(addition.answer)
    passkey = TASKS["passkey"].example(rng, length)
    at = passkey.prompt.index("key")
    assert passkey.answer == passkey.prompt[at + 1 : at + 6] and all(d.isdigit() for d in passkey.answer)
    assert passkey.prompt[-1] == "=" and len(passkey) == length
    assert all(s.isalpha() for s in passkey.prompt[:at] + passkey.prompt[at + 6 : -1])


@pytest.mark.parametrize("name", sorted(TASKS))
def test_token_ids_are_the_tokenizers_and_labels_cover_the_answer(name):
    task = get_task(name)
    tokenizer = task_tokenizer(task)
    rows = training_rows(task, tokenizer, 50, 40, seed=[7, 0])
    assert {len(ids) for ids in rows["input_ids"]} <= set(range(task.min_length - 2, 41))
    rng = np.random.default_rng([7, 0])  # the rows' own draws, replayed: 50 lengths, then the examples
    drawn = rng.integers(task.min_length, 41, size=50)
    for length, ids, labels in zip(drawn, rows["input_ids"], rows["labels"]):
        example = task.example(rng, int(length))
        text = example_text(example)
        assert ids == tokenizer(text, add_special_tokens=False)["input_ids"]
        assert tokenizer.decode(ids) == text
        answer = len(example.answer) + 1  # and the end token
        assert labels[-answer:] == ids[-answer:]
        assert labels[:-answer] == [IGNORE_INDEX] * (len(ids) - answer)


def test_training_and_test_examples_depend_on_their_seed_only():
    task = get_task("copy")
    tokenizer = task_tokenizer(task)
    assert training_rows(task, tokenizer, 8, 20, 1) == training_rows(task, tokenizer, 8, 20, 1)
    assert training_rows(task, tokenizer, 8, 20, 1) != training_rows(task, tokenizer, 8, 20, 2)
    first, start = evaluation_examples(task, tokenizer, 5, 21, [3, 2])
    assert first.shape == (5, 21) and start == 10 + 1  # start token and 9 letters and "="
    assert (evaluation_examples(task, tokenizer, 5, 21, [3, 2])[0] == first).all()


def test_too_short_a_training_length_is_refused():
    from hfgpt.errors import ConfigError

    with pytest.raises(ConfigError, match="passkey task needs examples of at least 14 tokens"):
        get_task("passkey").check_length(10)
    with pytest.raises(ConfigError, match="unknown task 'sort'"):
        get_task("sort")


def test_pad_collator_pads_right_with_ignored_labels():
    batch = pad_collator(9)(
        [{"input_ids": [1, 2, 3], "labels": [-100, 2, 3]}, {"input_ids": [4], "labels": [4]}]
    )
    assert batch["input_ids"].tolist() == [[1, 2, 3], [4, 9, 9]]
    assert batch["labels"].tolist() == [[-100, 2, 3], [4, -100, -100]]
    assert "attention_mask" not in batch


class CopyOracle(torch.nn.Module):
    """Logits that copy the letter n + 1 positions back (right on copy examples), except that they answer "b"
    wherever the letter to copy is "z": examples with a "z" are answered wrongly."""

    def __init__(self, tokenizer):
        super().__init__()
        self.weight = torch.nn.Parameter(torch.zeros(()))  # a device to run on
        self.vocab = len(tokenizer)
        self.equals = tokenizer.convert_tokens_to_ids("=")
        self.z, self.b = tokenizer.convert_tokens_to_ids("z"), tokenizer.convert_tokens_to_ids("b")
        self.end = tokenizer.eos_token_id

    def forward(self, input_ids, use_cache=False):
        batch, seq = input_ids.shape
        logits = torch.zeros(batch, seq, self.vocab)
        for i in range(batch):
            equals = (input_ids[i] == self.equals).nonzero()
            if not len(equals):
                continue
            eq = int(equals[0])
            for p in range(eq, seq):
                source = p - eq + 1  # the letter after the start token, then the next...
                token = int(input_ids[i, source]) if source < eq else self.end
                logits[i, p, self.b if token == self.z else token] = 1.0
        return type("Output", (), {"logits": logits})()


def greedy(model, prompt: list[int], steps: int) -> list[int]:
    """Plain greedy decoding: feed the tokens so far, append the argmax, `steps` times."""
    ids = list(prompt)
    for _ in range(steps):
        logits = model(input_ids=torch.tensor([ids])).logits
        ids.append(int(logits[0, -1].argmax()))
    return ids[len(prompt) :]


def test_exact_match_equals_greedy_decoding_on_an_oracle():
    task = get_task("copy")
    tokenizer = task_tokenizer(task)
    oracle = CopyOracle(tokenizer)
    ids, start = evaluation_examples(task, tokenizer, 40, 13, seed=0)  # 5 letters: a "z" in about one in five
    right, _ = exact_match(oracle, ids, start, batch_size=16)
    decoded = [
        greedy(oracle, row[:start].tolist(), ids.shape[1] - start) == row[start:].tolist() for row in ids
    ]
    assert right.tolist() == decoded
    assert 0 < sum(decoded) < len(decoded)  # both outcomes occur
    assert right.tolist() == [tokenizer.convert_tokens_to_ids("z") not in row[:start] for row in ids]


def test_exact_match_equals_greedy_generation_of_a_real_model():
    """Answers made of the model's own greedy generation (transformers' `generate`) are exactly right; one token
    changed makes them wrong."""
    from hfgpt import HFGPTConfig, HFGPTForCausalLM

    task = get_task("addition")
    tokenizer = task_tokenizer(task)
    torch.manual_seed(0)
    config = HFGPTConfig.from_preset("tiny", vocab_size=len(tokenizer), position_encoding="rope")
    model = HFGPTForCausalLM(config).eval()
    ids, start = evaluation_examples(task, tokenizer, 12, 17, seed=1)
    steps = ids.shape[1] - start
    prompts = torch.from_numpy(ids[:, :start])
    generated = model.generate(
        prompts,
        max_new_tokens=steps,
        min_new_tokens=steps,
        do_sample=False,
        pad_token_id=0,
        eos_token_id=None,
    )
    own = generated.numpy()
    assert exact_match(model, own, start, batch_size=5)[0].all()
    wrong = own.copy()
    wrong[::2, -2] = (wrong[::2, -2] + 1) % len(tokenizer)
    assert exact_match(model, wrong, start)[0].tolist() == [i % 2 == 1 for i in range(12)]


def test_score_task_reports_lengths_past_a_learned_models_positions_as_none():
    from hfgpt import HFGPTConfig, HFGPTForCausalLM

    task = get_task("copy")
    tokenizer = task_tokenizer(task)
    config = HFGPTConfig.from_preset("tiny", vocab_size=len(tokenizer), context_length=16)
    scores = score_task(HFGPTForCausalLM(config), task, tokenizer, [16, 17, 24], 10, seed=0)
    assert scores[1] is None and scores[2] is None
    assert scores[0].length == 16 and scores[0].examples == 10 and 0.0 <= scores[0].accuracy <= 1.0
    assert scores[0].loss > 0
