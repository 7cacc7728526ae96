"""Fine-tuning data: the Alpaca prompt, response-only labels, padding with transformers' collators and the
loss they give, labelled CSVs."""

import json
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from transformers import DataCollatorForSeq2Seq, DataCollatorWithPadding

from hfgpt import GPT2BPETokenizer, HFGPTConfig, HFGPTForCausalLM
from hfgpt.data.finetuning import (
    IGNORE_INDEX,
    build_instruction_dataset,
    encode_instruction,
    format_alpaca,
    load_instructions,
    read_labelled_csv,
)

EXAMPLES = Path(__file__).resolve().parents[2] / "examples" / "data"
CSV_PATH = EXAMPLES / "sms_spam.csv"
JSON_PATH = EXAMPLES / "instructions.json"
EOS = 50256


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


@pytest.fixture(scope="module")
def padded_tokenizer():
    """GPT-2's tokenizer padding with <|endoftext|>, as the recipes pad a tokenizer without a pad token."""
    return GPT2BPETokenizer(pad_token="<|endoftext|>")


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


def test_the_recipes_collators_pad_ids_mask_and_labels_at_the_right_positions(padded_tokenizer):
    features = [
        {"input_ids": [5, 6, 7, 8, 9], "labels": [-100, -100, -100, 8, 9]},
        {"input_ids": [1, 2, 3], "labels": [-100, 2, 3]},
    ]
    batch = DataCollatorForSeq2Seq(padded_tokenizer, label_pad_token_id=IGNORE_INDEX)(features)
    assert batch["input_ids"].tolist() == [[5, 6, 7, 8, 9], [1, 2, 3, EOS, EOS]]
    assert batch["attention_mask"].tolist() == [[1, 1, 1, 1, 1], [1, 1, 1, 0, 0]]
    assert batch["labels"].tolist() == [[-100, -100, -100, 8, 9], [-100, 2, 3, -100, -100]]
    scalar = DataCollatorWithPadding(padded_tokenizer)(
        [{"input_ids": [4], "labels": 1}, {"input_ids": [4, 4], "labels": 0}]
    )
    assert scalar["labels"].tolist() == [1, 0] and scalar["input_ids"].tolist() == [[4, EOS], [4, 4]]


def test_masked_batch_loss_is_cross_entropy_over_response_tokens_only(gpt2_tokenizer, padded_tokenizer):
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
    batch = DataCollatorForSeq2Seq(padded_tokenizer, label_pad_token_id=IGNORE_INDEX)(
        [dataset[i] for i in range(2)]
    )
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
