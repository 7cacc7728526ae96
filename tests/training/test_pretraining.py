"""`hfgpt train`: end to end, reproducibility, resume, output-dir safety and errors (tiny models)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file
from transformers import AutoModelForCausalLM, AutoTokenizer, TrainerCallback

from hfgpt.cli import main
from hfgpt.data.sources import default_corpus_path
from hfgpt.training import TrainArguments, train

TINY = dict(
    preset="tiny",
    tokenizer="regex",
    max_length=32,
    epochs=2.0,
    batch_size=2,
    eval_every=4,
    show_progress=False,
    max_new_tokens=5,
)


def tiny_args(output_dir: Path, **fields) -> TrainArguments:
    return TrainArguments(output_dir=str(output_dir), **{**TINY, **fields})


def weights(output_dir: Path) -> dict[str, torch.Tensor]:
    return load_file(str(output_dir / "model.safetensors"))


def test_train_cli_end_to_end(tmp_path, capsys):
    out = tmp_path / "run"
    code = main(
        [
            "train",
            "--output-dir",
            str(out),
            "--preset",
            "tiny",
            "--tokenizer",
            "regex",
            "--max-length",
            "32",
            "--epochs",
            "1",
            "--eval-every",
            "4",
            "--no-progress",
            "--max-new-tokens",
            "5",
        ]
    )
    assert code == 0
    printed = capsys.readouterr().out
    assert "sample: Every effort moves you" in printed and "final training loss" in printed

    model, tokenizer = AutoModelForCausalLM.from_pretrained(out), AutoTokenizer.from_pretrained(out)
    assert type(model).__name__ == "HFGPTForCausalLM" and type(tokenizer).__name__ == "RegexTokenizer"
    assert model.config.vocab_size == len(tokenizer)
    assert (out / "loss_curve.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    history = json.loads((out / "training_log.json").read_text())["history"]
    assert any("loss" in r for r in history) and any("eval_loss" in r for r in history)
    tokens = [r["tokens_seen"] for r in history]
    assert tokens == sorted(tokens) and tokens[-1] > 0
    assert not (tmp_path / "run.partial").exists()


def test_same_seed_same_losses(tmp_path):
    first = train(tiny_args(tmp_path / "a", seed=7))
    second = train(tiny_args(tmp_path / "b", seed=7))
    other = train(tiny_args(tmp_path / "c", seed=8))
    losses = lambda result: [r.get("loss", r.get("eval_loss")) for r in result.history]  # noqa: E731
    assert losses(first) == losses(second)
    assert losses(first) != losses(other)
    assert all(torch.equal(v, weights(tmp_path / "b")[k]) for k, v in weights(tmp_path / "a").items())


class Interrupt(TrainerCallback):
    """Simulates a crash (Ctrl-C, OOM kill) once training reaches `step`."""

    def __init__(self, step: int):
        self.step = step

    def on_step_end(self, args, state, control, **kwargs):
        if state.global_step == self.step:
            raise KeyboardInterrupt


def test_interrupted_and_resumed_run_ends_with_the_same_weights(tmp_path):
    full = tiny_args(tmp_path / "full", epochs=3.0, save_every=4)
    train(full)
    partial = tiny_args(tmp_path / "resumed", epochs=3.0, save_every=4)
    with pytest.raises(KeyboardInterrupt):
        train(partial, callbacks=[Interrupt(step=6)])  # checkpoint-4 exists, steps 5-6 are lost
    assert not (tmp_path / "resumed").exists()
    assert (tmp_path / "resumed.partial" / "checkpoints" / "checkpoint-4").exists()
    partial.resume = True
    train(partial)
    resumed, reference = weights(tmp_path / "resumed"), weights(tmp_path / "full")
    assert resumed.keys() == reference.keys()
    assert all(torch.equal(resumed[k], reference[k]) for k in reference)


def test_existing_model_is_refused_without_overwrite_and_survives_a_crash(tmp_path):
    out = tmp_path / "run"
    train(tiny_args(out, seed=1))
    before = weights(out)
    with pytest.raises(FileExistsError, match="already holds a trained model; pass --overwrite"):
        train(tiny_args(out, seed=2))
    with pytest.raises(KeyboardInterrupt):
        train(tiny_args(out, seed=2, overwrite=True), callbacks=[Interrupt(step=3)])
    after = weights(out)  # the crash left the finished model untouched
    assert all(torch.equal(before[k], after[k]) for k in before)
    train(tiny_args(out, seed=2, overwrite=True))
    assert not all(torch.equal(before[k], weights(out)[k]) for k in before)


def test_cli_refuses_existing_output_dir(tmp_path, capsys):
    out = tmp_path / "run"
    train(tiny_args(out, epochs=1.0))
    code = main(
        ["train", "--output-dir", str(out), "--preset", "tiny", "--tokenizer", "regex", "--no-progress"]
    )
    assert code == 2
    assert "already holds a trained model; pass --overwrite" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("corpus_text", "fields", "message"),
    [
        ("   \n\n ", {}, "the corpus is empty"),
        (
            "Only a few words here.",
            {},
            r"too short to hold out 33 bytes for validation \(one evaluation window needs 33\) and keep text",
        ),
        ("Some text " * 200, {"position_encoding": "spiral"}, "unknown position-encoding strategy 'spiral'"),
        ("Some text " * 200, {"tokenizer": "sentencepiece"}, "unknown tokenizer strategy 'sentencepiece'"),
    ],
)
def test_bad_input_is_a_clear_error(tmp_path, corpus_text, fields, message):
    corpus = tmp_path / "corpus.txt"
    corpus.write_text(corpus_text)
    with pytest.raises(ValueError, match=message):
        train(tiny_args(tmp_path / "out", corpus=[str(corpus)], **fields))


def test_saved_dataset_directory_as_corpus_and_the_validation_loss_of_its_held_out_tail(
    tmp_path, tiktoken_gpt2
):
    """GPT-2's fixed vocabulary splits by tokens: with two documents each far above 10% of the corpus, none is
    held out whole and the last 10% of the corpus's tokens (rounded up) come from the end of the larger one.
    The reported validation loss is the saved model's mean loss over those tokens' 32-token windows (stride
    32, whole windows only), computed here with tiktoken and a plain loop."""
    from datasets import Dataset

    text = default_corpus_path().read_text()
    docs = [text[:9000], text[9000:]]
    Dataset.from_dict({"text": docs}).save_to_disk(str(tmp_path / "ds"))
    args = tiny_args(tmp_path / "out", corpus=[str(tmp_path / "ds")], tokenizer="gpt2-bpe", max_steps=3)
    result = train(args)

    ids = [tiktoken_gpt2.encode_ordinary(doc) for doc in docs]
    held = -(-sum(map(len, ids)) // 10)
    largest = max(range(2), key=lambda i: len(ids[i]))
    tail = ids[largest][-held:]
    log = json.loads((tmp_path / "out" / "training_log.json").read_text())
    assert f"the last {held:,} tokens of document {largest}" in log["held_out"]
    model = AutoModelForCausalLM.from_pretrained(tmp_path / "out").eval()
    losses = []
    with torch.no_grad():
        for start in range(0, len(tail) - 32, 32):
            window = torch.tensor([tail[start : start + 33]])
            losses.append(torch.nn.functional.cross_entropy(model(window[:, :-1]).logits[0], window[0, 1:]))
    assert result.final_eval_loss == pytest.approx(torch.stack(losses).mean().item(), rel=1e-4)


def test_a_corpus_folder_of_texts_that_look_like_paths_trains(tmp_path):
    # Each file's content is read as text, never reinterpreted as a path, URL or glob: each is a document.
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    story = default_corpus_path().read_text()
    chapters = [story[i : i + 2000] for i in range(0, len(story), 2000)]
    for i, content in enumerate(
        ["https://example.com/some/page.html", "data/x.txt", "*.py", "[abc]", *chapters]
    ):
        (corpus / f"{i:02}.txt").write_text(content)
    train(tiny_args(tmp_path / "out", corpus=[str(corpus)], epochs=1.0, val_fraction=0.25))
    log = json.loads((tmp_path / "out" / "training_log.json").read_text())
    assert f"of {4 + len(chapters)} documents" in log["held_out"]


def test_a_story_and_two_one_line_files_train(tmp_path, capsys):
    """10% of three documents is not one document: the split counts tokens, the one-line files are held out
    whole and the rest is the story's tail, at least one window."""
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    (corpus / "story.txt").write_text(default_corpus_path().read_text())
    (corpus / "a.txt").write_text("One line.\n")
    (corpus / "b.txt").write_text("Another short line.\n")
    result = train(tiny_args(tmp_path / "out", corpus=[str(corpus)], max_steps=2))
    assert result.final_eval_loss is not None
    assert "held out 2 of 3 documents and the last" in capsys.readouterr().err


def test_options_a_tokenizer_does_not_take_are_refused_before_any_work(tmp_path, capsys):
    code = main(["train", "--tokenizer", "regex", "--vocab-size", "100", "--output-dir", str(tmp_path / "o")])
    err = capsys.readouterr().err
    assert code == 2
    assert err.strip() == (
        "hfgpt train: error: the 'regex' tokenizer does not take vocab_size; it takes: bos_token, eos_token, "
        "pad_token, strict"
    )
    assert not list(tmp_path.iterdir())


def test_structured_corpora_skipped_files_and_a_bounded_validation(tmp_path, capsys):
    import json as json_

    from hfgpt.training.pretraining import prepare

    story = default_corpus_path().read_text()
    chapters = [story[i : i + 1500] for i in range(0, len(story), 1500)]
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    (corpus / "chapters.jsonl").write_text(
        "".join(json_.dumps({"body": c, "n": i}) + "\n" for i, c in enumerate(chapters))
    )
    bad = corpus / "latin1.txt"
    bad.write_bytes(b"ok " * 40000 + "caf\xe9".encode("latin-1"))  # the bad byte lies past the first 64 KiB
    args = dict(corpus=[str(corpus / "chapters.jsonl"), str(bad)], text_column="body", epochs=1.0)
    with pytest.raises(ValueError, match=r"latin1.txt is not UTF-8 text \(bad byte at offset 120003\)"):
        train(tiny_args(tmp_path / "refused", **args))
    data = prepare(
        tiny_args(tmp_path / "out", **args, skip_bad_files=True, max_eval_tokens=64, val_fraction=0.3)
    )
    assert (
        "skipped 1 file(s), 120,004 bytes, that are not UTF-8 text or cannot be read"
        in capsys.readouterr().err
    )
    assert len(data.val_set) == 2  # validation uses at most 64 tokens: 2 windows of 32
    assert (
        sum(len(row) for row in data.train_set["input_ids"]) > 1000
    )  # the chapters train (not the bad file)


def test_the_default_validation_interval_follows_the_run_length():
    from types import SimpleNamespace

    from hfgpt.training.pretraining import schedule_evaluation

    targs = SimpleNamespace(eval_steps=None, logging_steps=None, save_steps=None)
    data = SimpleNamespace(train_set=range(18))
    steps = schedule_evaluation(
        tiny_args(Path("x"), eval_every=None, epochs=40.0, batch_size=2), targs, data, 1
    )
    assert (steps, targs.eval_steps, targs.save_steps) == (360, 20, 200)  # the default run: every 20 steps
    steps = schedule_evaluation(tiny_args(Path("x"), eval_every=None, max_steps=100_000), targs, data, 1)
    assert (steps, targs.eval_steps) == (100_000, 2000)
    schedule_evaluation(tiny_args(Path("x"), eval_every=7, max_steps=100_000), targs, data, 1)
    assert targs.eval_steps == targs.logging_steps == 7 and targs.save_steps == 70
