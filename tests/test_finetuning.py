"""Fine-tuning: the Alpaca prompt, response-only labels, padding, the loss they give, and the three recipes."""

import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

from hfgpt import GPT2BPETokenizer, HFGPTConfig, HFGPTForCausalLM, RegexTokenizer
from hfgpt.finetuning import (
    IGNORE_INDEX,
    PaddingCollator,
    build_instruction_dataset,
    continue_pretraining,
    encode_instruction,
    finetune_classifier,
    finetune_instructions,
    format_alpaca,
    load_instructions,
    read_labelled_csv,
)

EXAMPLES = Path(__file__).resolve().parents[1] / "examples" / "data"
CSV_PATH = EXAMPLES / "sms_spam.csv"
JSON_PATH = EXAMPLES / "instructions.json"


# --- the prompt -------------------------------------------------------------------------------------------
def test_format_alpaca_with_input_matches_the_template():
    expected = (
        "Below is an instruction that describes a task. Write a response that appropriately completes the "
        "request.\n"
        "\n"
        "### Instruction:\n"
        "Give the opposite of the word.\n"
        "\n"
        "### Input:\n"
        "hot\n"
        "\n"
        "### Response:\n"
    )
    assert (
        format_alpaca({"instruction": "Give the opposite of the word.", "input": "hot", "output": "cold"})
        == expected
    )


def test_format_alpaca_leaves_out_an_empty_input():
    expected = (
        "Below is an instruction that describes a task. Write a response that appropriately completes the "
        "request.\n\n### Instruction:\nName a primary colour.\n\n### Response:\n"
    )
    assert format_alpaca({"instruction": "Name a primary colour.", "input": ""}) == expected
    assert format_alpaca({"instruction": "Name a primary colour."}) == expected


def test_format_alpaca_rejects_a_missing_instruction():
    with pytest.raises(ValueError, match="instruction"):
        format_alpaca({"input": "x", "output": "y"})


def test_load_instructions_reads_the_bundled_file_and_rejects_bad_ones(tmp_path):
    entries = load_instructions(JSON_PATH)
    assert len(entries) >= 50 and all({"instruction", "input", "output"} <= set(e) for e in entries)
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps([{"instruction": "no output here"}]))
    with pytest.raises(ValueError, match="entry 0"):
        load_instructions(bad)
    with pytest.raises(FileNotFoundError):
        load_instructions(tmp_path / "missing.json")


# --- labels and padding -----------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def gpt2_tokenizer():
    return GPT2BPETokenizer()


def test_only_response_and_eos_are_labelled(gpt2_tokenizer):
    tok = gpt2_tokenizer
    entry = {"instruction": "Give the opposite of the word.", "input": "hot", "output": "cold"}
    row = encode_instruction(entry, tok)
    ids, labels = row["input_ids"], row["labels"]
    n_prompt = len(tok(format_alpaca(entry), add_special_tokens=False)["input_ids"])
    # From GPT-2's encoder.json: the prompt ends in "\n" = 198 ("Ċ"); the response is "cold" = 36673 (no
    # leading space, so not "Ġcold" = 4692), then <|endoftext|> = 50256.
    assert ids[n_prompt - 1] == 198
    assert ids[n_prompt:] == [36673, 50256]
    assert labels == [IGNORE_INDEX] * n_prompt + [36673, 50256]
    assert tok.decode(ids[:n_prompt]) == format_alpaca(entry)


def test_collator_pads_ids_mask_and_labels_at_the_right_positions():
    features = [
        {"input_ids": [5, 6, 7, 8, 9], "labels": [-100, -100, -100, 8, 9]},
        {"input_ids": [1, 2, 3], "labels": [-100, 2, 3]},
    ]
    batch = PaddingCollator(pad_token_id=0)(features)
    assert batch["input_ids"].tolist() == [[5, 6, 7, 8, 9], [1, 2, 3, 0, 0]]
    assert batch["attention_mask"].tolist() == [[1, 1, 1, 1, 1], [1, 1, 1, 0, 0]]
    assert batch["labels"].tolist() == [[-100, -100, -100, 8, 9], [-100, 2, 3, -100, -100]]
    scalar = PaddingCollator(pad_token_id=0)(
        [{"input_ids": [4], "labels": 1}, {"input_ids": [4, 4], "labels": 0}]
    )
    assert scalar["labels"].tolist() == [1, 0] and scalar["input_ids"].tolist() == [[4, 0], [4, 4]]


def test_masked_batch_loss_is_cross_entropy_over_response_tokens_only(gpt2_tokenizer):
    tok = gpt2_tokenizer
    entries = [
        {"instruction": "Give the opposite of the word.", "input": "hot", "output": "cold"},
        {
            "instruction": "Name the capital city of the country.",
            "input": "Italy",
            "output": "Rome is the capital.",
        },
    ]
    dataset = build_instruction_dataset(entries, tok, max_length=64)
    batch = PaddingCollator(tok.eos_token_id)([dataset[i] for i in range(2)])
    torch.manual_seed(0)
    model = HFGPTForCausalLM(HFGPTConfig.from_preset("tiny", drop_rate=0.0)).eval()
    with torch.no_grad():
        out = model(**batch)

    # Independently: token t predicts token t+1; keep only targets that belong to a response (or its EOS).
    logits, ids = out.logits[:, :-1], batch["input_ids"][:, 1:]
    prompt_lengths = [len(tok(format_alpaca(e), add_special_tokens=False)["input_ids"]) for e in entries]
    response_lengths = [len(tok(e["output"], add_special_tokens=False)["input_ids"]) + 1 for e in entries]
    picked_logits, picked_targets = [], []
    for b, (p, r) in enumerate(zip(prompt_lengths, response_lengths)):
        for target_position in range(p, p + r):  # positions of the response tokens in input_ids
            picked_logits.append(logits[b, target_position - 1])
            picked_targets.append(ids[b, target_position - 1])
    expected = F.cross_entropy(torch.stack(picked_logits), torch.stack(picked_targets))
    torch.testing.assert_close(out.loss, expected)
    unmasked = model(input_ids=batch["input_ids"], labels=batch["input_ids"]).loss
    assert not torch.isclose(unmasked, expected)  # the masking really changed what is scored


def test_prompts_that_fill_the_context_are_an_error(gpt2_tokenizer):
    entry = {"instruction": "Give the opposite of the word.", "input": "hot", "output": "cold"}
    with pytest.raises(ValueError, match="no response to learn"):
        build_instruction_dataset([entry], gpt2_tokenizer, max_length=10)


# --- classification ---------------------------------------------------------------------------------------
def test_read_labelled_csv_checks_the_header(tmp_path):
    texts, labels = read_labelled_csv(CSV_PATH)
    assert len(texts) == len(labels) >= 200 and set(labels) == {"ham", "spam"}
    bad = tmp_path / "bad.csv"
    bad.write_text("message,category\nhello,ham\n")
    with pytest.raises(ValueError, match="no column"):
        read_labelled_csv(bad)


def test_classifier_on_the_bundled_csv_beats_the_majority_rate():
    config = HFGPTConfig.from_preset("tiny", drop_rate=0.0)
    result = finetune_classifier(config, CSV_PATH, epochs=3, batch_size=8, learning_rate=1e-3)
    metrics = result.metrics
    assert metrics["train_accuracy"] > metrics["majority_rate"] + 0.2
    assert metrics["eval_accuracy"] > metrics["eval_majority_rate"] + 0.2
    assert result.model.config.id2label == {0: "ham", 1: "spam"}
    # The trained classifier answers for new text, padded in a batch next to a longer one.
    tok = result.tokenizer
    batch = PaddingCollator(result.model.config.pad_token_id)(
        [
            {
                "input_ids": tok("URGENT! You have won a cash prize, call now", add_special_tokens=False)[
                    "input_ids"
                ]
            },
            {"input_ids": tok("See you at the park after work", add_special_tokens=False)["input_ids"]},
        ]
    )
    result.model.eval()
    with torch.no_grad():
        predicted = result.model(**{k: v.to(result.model.device) for k, v in batch.items()}).logits.argmax(-1)
    assert predicted.tolist() == [1, 0]


# --- starting from a saved model --------------------------------------------------------------------------
@pytest.fixture(scope="module")
def saved_model(tmp_path_factory):
    """A tiny untrained causal LM + a RegexTokenizer that knows the words of the bundled example data."""
    directory = tmp_path_factory.mktemp("base")
    texts = [e["instruction"] + " " + e["input"] + " " + e["output"] for e in load_instructions(JSON_PATH)]
    texts.append(format_alpaca({"instruction": "x", "input": "y"}))
    tok = RegexTokenizer.from_corpus(texts)
    config = HFGPTConfig.from_preset(
        "tiny", context_length=96, drop_rate=0.0, vocab_size=len(tok), eos_token_id=tok.eos_token_id
    )
    torch.manual_seed(0)
    HFGPTForCausalLM(config).save_pretrained(directory)
    tok.save_pretrained(directory)
    return directory


def test_continue_pretraining_lowers_the_loss_on_the_new_text(saved_model, tmp_path):
    text = " ".join(e["output"] for e in load_instructions(JSON_PATH)) * 2
    out = tmp_path / "continued"
    result = continue_pretraining(saved_model, text, out, epochs=8, batch_size=2, learning_rate=5e-3)
    assert result.metrics["loss_after"] < result.metrics["loss_before"] - 1.0
    reloaded = HFGPTForCausalLM.from_pretrained(out)
    torch.testing.assert_close(reloaded.lm_head.weight, result.model.lm_head.weight.cpu())
    with pytest.raises(FileExistsError, match="overwrite"):
        continue_pretraining(saved_model, text, out)


def test_instruction_finetuning_lowers_the_response_loss(saved_model):
    result = finetune_instructions(saved_model, JSON_PATH, epochs=5, batch_size=4, learning_rate=1e-2)
    held_out = result.metrics["held_out"]
    assert len(held_out) == 5
    assert result.metrics["eval_loss"] < result.metrics["eval_loss_before"]

    # Measured here, independently of Trainer: the response-only loss on entries it trained on.
    entries = [e for i, e in enumerate(load_instructions(JSON_PATH)) if i not in held_out][:16]
    tok = result.tokenizer
    batch = PaddingCollator(tok.eos_token_id)(list(build_instruction_dataset(entries, tok, 96)))
    before = HFGPTForCausalLM.from_pretrained(saved_model).eval()
    after = result.model.cpu().eval()
    with torch.no_grad():
        loss_before, loss_after = before(**batch).loss.item(), after(**batch).loss.item()
    assert loss_after < loss_before - 1.0


def test_recipes_name_a_missing_model_directory(tmp_path):
    with pytest.raises(FileNotFoundError, match="hfgpt train"):
        finetune_instructions(tmp_path / "nowhere", JSON_PATH)


def test_classifier_starts_from_a_saved_causal_lm(saved_model):
    result = finetune_classifier(saved_model, CSV_PATH, epochs=1, batch_size=16)
    base = HFGPTForCausalLM.from_pretrained(saved_model)
    assert result.model.config.num_labels == 2
    assert result.model.config.pad_token_id == result.tokenizer.eos_token_id
    assert 0.0 <= result.metrics["eval_accuracy"] <= 1.0
    # The transformer came from the saved model: one short epoch moves its embeddings much less than the
    # distance between two independent initialisations (about 0.0226 mean absolute difference at std 0.02).
    moved = (result.model.transformer.wte.weight.cpu() - base.transformer.wte.weight).abs().mean()
    assert moved < 0.01


@pytest.mark.parametrize("script", ["pretrain", "finetune_continue", "classify", "instruction_finetune"])
def test_example_scripts_start_and_describe_themselves(script):
    path = EXAMPLES.parent / f"{script}.py"
    done = subprocess.run([sys.executable, str(path), "--help"], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert "--output-dir" in done.stdout and "--epochs" in done.stdout
