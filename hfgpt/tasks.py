"""Synthetic tasks for length generalization: copy, reverse, addition and passkey retrieval.

A task makes `(prompt, answer)` examples over a small vocabulary of symbols from a seeded random generator,
at a given length in tokens. An example is the token sequence

    <|endoftext|> prompt... answer... <|endoftext|>

(the first token is a start token, which gives every strategy, `none` included, a fixed place to attend to;
the last one ends the answer, so answering includes knowing when to stop). `length` counts every token; a
task fills it as far as its structure allows (copy's `2n + 3` tokens fill an odd length exactly, an even
one but the last token).

Training examples come with labels on the answer and the final end token only (`IGNORE_INDEX` on the rest),
as in instruction tuning: the model is scored on answering, not on predicting random prompts.

Exact match: the greedy decoding of the answer, from the prompt, equals the answer token for token, end
token included. It is computed in one teacher-forced forward pass per batch: the answer is right exactly
when the model's argmax at every answer position, given the true tokens before it, is the true token. If it
is, greedy decoding reproduces the true prefix at every step and so emits the answer; if it is not, take
the first position where the argmax differs: greedy decoding reached that position with the true prefix
(every earlier argmax was right) and emits the wrong token there. Both read the argmax of the same model
on the same prefix (they could only part on a floating-point tie between two logits).

Symbols are written as space-separated words, so the task's vocabulary is a `RegexTokenizer`'s (one
word, one token), saved with each model: `hfgpt attention` and `hfgpt generate` read a task model's inputs
as text.
"""

from __future__ import annotations

import string
from collections.abc import Sequence
from dataclasses import dataclass
from typing import ClassVar

import numpy as np

from hfgpt.data.finetuning import IGNORE_INDEX
from hfgpt.errors import ConfigError

LETTERS = tuple(string.ascii_lowercase)
DIGITS = tuple(string.digits)


@dataclass(frozen=True)
class Example:
    """One example: the prompt and answer symbols (start and end tokens excluded)."""

    prompt: tuple[str, ...]
    answer: tuple[str, ...]

    def __len__(self) -> int:
        return len(self.prompt) + len(self.answer) + 2


class Task:
    """A synthetic task: examples of a given length in tokens from a random generator.

    Subclasses set `name`, `symbols` (every symbol an example may hold), `min_length` (the shortest example,
    in tokens) and `example`.
    """

    name: ClassVar[str]
    description: ClassVar[str]
    symbols: ClassVar[tuple[str, ...]]
    min_length: ClassVar[int]

    def example(self, rng: np.random.Generator, length: int) -> Example:
        """An example of at most `length` tokens (start and end tokens included), as long as the task allows."""
        raise NotImplementedError

    def check_length(self, length: int) -> None:
        if length < self.min_length:
            raise ConfigError(
                f"the {self.name} task needs examples of at least {self.min_length} tokens, got {length}: "
                f"raise --max-length"
            )


class CopyTask(Task):
    """`a b c =` -> `a b c`: repeat the letters before `=`."""

    name = "copy"
    description = "repeat a string of random letters"
    symbols = (*LETTERS, "=")
    min_length = 5

    def letters(self, rng: np.random.Generator, length: int) -> tuple[str, ...]:
        n = (length - 3) // 2
        return tuple(rng.choice(LETTERS, size=n))

    def example(self, rng, length):
        letters = self.letters(rng, length)
        return Example((*letters, "="), letters)


class ReverseTask(CopyTask):
    """`a b c =` -> `c b a`: the letters before `=`, last first."""

    name = "reverse"
    description = "write a string of random letters backwards"

    def example(self, rng, length):
        letters = self.letters(rng, length)
        return Example((*letters, "="), letters[::-1])


class AdditionTask(Task):
    """`4 2 + 9 1 =` -> `3 4 1`: two n-digit numbers and their n+1-digit sum, every number least significant
    digit first (24 + 19 = 143 read backwards: the order in which carries are computed)."""

    name = "addition"
    description = "add two n-digit numbers, digits least significant first"
    symbols = (*DIGITS, "+", "=")
    min_length = 8

    def example(self, rng, length):
        n = (length - 5) // 3
        a, b = rng.integers(0, 10, size=n), rng.integers(0, 10, size=n)
        total = sum(int(d) * 10**i for i, d in enumerate(a)) + sum(int(d) * 10**i for i, d in enumerate(b))
        digits = tuple(str(total // 10**i % 10) for i in range(n + 1))
        return Example((*map(str, a), "+", *map(str, b), "="), digits)


class PasskeyTask(Task):
    """`x q key 3 1 4 1 5 z ... =` -> `3 1 4 1 5`: find the five digits after `key` among random letters."""

    name = "passkey"
    description = "retrieve the 5-digit key hidden at a random place among random letters"
    key_digits = 5
    symbols = (*LETTERS, *DIGITS, "key", "=")
    min_length = 2 * 5 + 4

    def example(self, rng, length):
        filler = length - self.min_length
        letters = tuple(rng.choice(LETTERS, size=filler))
        key = tuple(rng.choice(DIGITS, size=self.key_digits))
        at = int(rng.integers(0, filler + 1))
        return Example((*letters[:at], "key", *key, *letters[at:], "="), key)


TASKS: dict[str, Task] = {
    task.name: task for task in (CopyTask(), ReverseTask(), AdditionTask(), PasskeyTask())
}


def get_task(name: str) -> Task:
    if name not in TASKS:
        raise ConfigError(f"unknown task {name!r}: choose one of {', '.join(TASKS)}")
    return TASKS[name]


def task_tokenizer(task: Task):
    """The task's tokenizer: one token per symbol, `<|endoftext|>` the start, end and padding token."""
    from hfgpt.tokenization.base import ENDOFTEXT, UNK
    from hfgpt.tokenization.regex import RegexTokenizer

    tokens = [*task.symbols, ENDOFTEXT, UNK]
    return RegexTokenizer(vocab={token: i for i, token in enumerate(tokens)}, pad_token=ENDOFTEXT)


def example_text(example: Example) -> str:
    """The example as the tokenizer reads it: `<|endoftext|> prompt... answer... <|endoftext|>`."""
    from hfgpt.tokenization.base import ENDOFTEXT

    return " ".join((ENDOFTEXT, *example.prompt, *example.answer, ENDOFTEXT))


def encode(example: Example, vocab: dict[str, int], end: int) -> tuple[list[int], int]:
    """`(ids, answer_start)`: the example's token ids and the index of its first answer token."""
    ids = [end, *(vocab[s] for s in example.prompt), *(vocab[s] for s in example.answer), end]
    return ids, len(example.prompt) + 1


def training_rows(
    task: Task, tokenizer, n: int, max_length: int, seed: int | Sequence[int]
) -> dict[str, list[list[int]]]:
    """`n` examples with lengths drawn uniformly from the task's shortest to `max_length` tokens: `input_ids` and
    `labels` (the answer and the end token; `IGNORE_INDEX` before). `seed`: numpy's `default_rng` seed."""
    task.check_length(max_length)
    rng = np.random.default_rng(seed)
    vocab, end = tokenizer.get_vocab(), tokenizer.eos_token_id
    input_ids, labels = [], []
    for length in rng.integers(task.min_length, max_length + 1, size=n):
        ids, start = encode(task.example(rng, int(length)), vocab, end)
        input_ids.append(ids)
        labels.append([IGNORE_INDEX] * start + ids[start:])
    return {"input_ids": input_ids, "labels": labels}


def evaluation_examples(
    task: Task, tokenizer, n: int, length: int, seed: int | Sequence[int]
) -> tuple[np.ndarray, int]:
    """`(ids, answer_start)`: `n` examples of one length as an `(n, tokens)` array (every example of a length has
    the same structure), for `exact_match`; drawn from `default_rng([*seed, length])`."""
    task.check_length(length)
    rng = np.random.default_rng([*np.atleast_1d(seed).tolist(), length])
    vocab, end = tokenizer.get_vocab(), tokenizer.eos_token_id
    rows = [encode(task.example(rng, length), vocab, end) for _ in range(n)]
    return np.array([ids for ids, _ in rows], dtype=np.int64), rows[0][1]


def pad_collator(pad_id: int):
    """Pads `input_ids` (with `pad_id`) and `labels` (with `IGNORE_INDEX`) on the right, to the batch's longest.

    No attention mask: under the causal mask a token never sees the padding after it, and positions count
    from the first token, so a padded example is computed as it would be alone.
    """
    import torch

    def collate(rows: Sequence[dict]) -> dict:
        longest = max(len(row["input_ids"]) for row in rows)
        ids = torch.full((len(rows), longest), pad_id, dtype=torch.long)
        labels = torch.full((len(rows), longest), IGNORE_INDEX, dtype=torch.long)
        for i, row in enumerate(rows):
            ids[i, : len(row["input_ids"])] = torch.as_tensor(row["input_ids"])
            labels[i, : len(row["labels"])] = torch.as_tensor(row["labels"])
        return {"input_ids": ids, "labels": labels}

    return collate


@dataclass(frozen=True)
class TaskScore:
    """Exact-match accuracy and the answer tokens' mean loss at one length.

    Args:
        length (`int`): tokens per example.
        examples (`int`): examples scored.
        accuracy (`float`): share of examples whose greedy answer is exactly right (see the module docstring).
        loss (`float`): mean cross-entropy, in nats, of the answer tokens (end token included).
    """

    length: int
    examples: int
    accuracy: float
    loss: float


def exact_match(model, ids: np.ndarray, answer_start: int, batch_size: int = 64) -> tuple[np.ndarray, float]:
    """`(right, nats)`: per example whether its greedy answer is exactly right (see the module docstring), and
    the summed cross-entropy of the answer tokens; `ids` as `evaluation_examples` makes them."""
    import torch
    import torch.nn.functional as F

    device = next(model.parameters()).device
    right, nats = [], 0.0
    was_training = model.training
    model.eval()
    try:
        with torch.inference_mode():
            for begin in range(0, len(ids), batch_size):
                batch = torch.from_numpy(ids[begin : begin + batch_size]).to(device)
                # logits at position p predict token p + 1: those of the answer are answer_start - 1 .. -2
                logits = model(input_ids=batch[:, :-1], use_cache=False).logits[:, answer_start - 1 :].float()
                targets = batch[:, answer_start:]
                right.append((logits.argmax(-1) == targets).all(-1).cpu().numpy())
                nats += float(F.cross_entropy(logits.transpose(1, 2), targets, reduction="sum"))
    finally:
        model.train(was_training)
    return np.concatenate(right), nats


def score_task(
    model,
    task: Task,
    tokenizer,
    lengths: Sequence[int],
    n: int,
    seed: int | Sequence[int],
    batch_size: int = 64,
) -> list[TaskScore | None]:
    """Exact match at each length on `n` examples (the same ones for every model, given `seed`); None where the
    model's positions cannot encode the length."""
    from hfgpt.position_encoding import max_positions

    limit = max_positions(model.config)
    scores: list[TaskScore | None] = []
    for length in lengths:
        if limit is not None and length > limit:
            scores.append(None)
            continue
        ids, start = evaluation_examples(task, tokenizer, n, length, seed)
        right, nats = exact_match(model, ids, start, batch_size)
        answer_tokens = ids.shape[0] * (ids.shape[1] - start)
        scores.append(TaskScore(length, len(right), float(right.mean()), nats / answer_tokens))
    return scores


__all__ = [
    "TASKS",
    "Example",
    "Task",
    "TaskScore",
    "exact_match",
    "example_text",
    "get_task",
    "pad_collator",
    "score_task",
    "task_tokenizer",
    "evaluation_examples",
    "training_rows",
]
