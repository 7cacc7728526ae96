"""`hfgpt generate`: greedy and sampled continuations that start with the prompt; clear errors."""

import pytest
import torch

import hfgpt
from hfgpt.cli import main


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
    """A small model that has memorised a short text, saved with its GPT-2 tokenizer."""
    torch.manual_seed(0)
    tokenizer = hfgpt.GPT2BPETokenizer()
    text = "Every effort moves you forward, and every step counts. " * 4
    ids = torch.tensor([tokenizer.encode(text)])
    config = hfgpt.HFGPTConfig.from_preset(
        "tiny", vocab_size=len(tokenizer), drop_rate=0.0, eos_token_id=tokenizer.eos_token_id
    )
    model = hfgpt.HFGPTForCausalLM(config)
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-2)
    for _ in range(40):
        loss = model(ids, labels=ids).loss
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    path = tmp_path_factory.mktemp("model")
    model.save_pretrained(path)
    tokenizer.save_pretrained(path)
    return path


def test_greedy_output_starts_with_the_prompt_and_continues_the_text(model_dir, capsys):
    assert (
        main(["generate", str(model_dir), "Every effort moves you", "--max-new-tokens", "4", "--greedy"]) == 0
    )
    out = capsys.readouterr().out.strip()
    assert out.startswith("Every effort moves you")
    assert out == "Every effort moves you forward, and every"  # the memorised continuation


def test_sampling_is_reproducible_with_a_seed(model_dir, capsys):
    args = [
        "generate",
        str(model_dir),
        "Every",
        "--max-new-tokens",
        "8",
        "--temperature",
        "1.5",
        "--top-k",
        "20",
    ]
    main([*args, "--seed", "3"])
    first = capsys.readouterr().out
    main([*args, "--seed", "3"])
    assert capsys.readouterr().out == first and first.startswith("Every")


def test_prompt_longer_than_the_context_is_a_clear_error(model_dir, capsys):
    prompt = "word " * 70  # the tiny preset has 64 positions
    assert main(["generate", str(model_dir), prompt, "--max-new-tokens", "5"]) == 2
    assert "knows only 64" in capsys.readouterr().err


def test_missing_model_dir_is_a_clear_error(tmp_path, capsys):
    assert main(["generate", str(tmp_path), "Hello"]) == 2
    assert "is not a model directory" in capsys.readouterr().err
