"""The fine-tuning recipes: classification, continued pretraining and instruction tuning, end to end."""

import subprocess
import sys
from pathlib import Path

import pytest
import torch
from transformers import DataCollatorForSeq2Seq, DataCollatorWithPadding

from hfgpt import HFGPTConfig, HFGPTForCausalLM, RegexTokenizer
from hfgpt.data.finetuning import IGNORE_INDEX, build_instruction_dataset, format_alpaca, load_instructions
from hfgpt.training.finetuning import continue_pretraining, finetune_classifier, finetune_instructions

EXAMPLES = Path(__file__).resolve().parents[2] / "examples" / "data"
CSV_PATH = EXAMPLES / "sms_spam.csv"
JSON_PATH = EXAMPLES / "instructions.json"


def test_classifier_on_the_bundled_csv_beats_the_majority_rate():
    config = HFGPTConfig.from_preset("tiny", drop_rate=0.0)
    result = finetune_classifier(config, CSV_PATH, epochs=3, batch_size=8, learning_rate=1e-3)
    metrics = result.metrics
    assert metrics["train_accuracy"] > metrics["majority_rate"] + 0.2
    assert metrics["eval_accuracy"] > metrics["eval_majority_rate"] + 0.2
    assert result.model.config.id2label == {0: "ham", 1: "spam"}
    # The trained classifier answers for new text, padded in a batch next to a longer one.
    tok = result.tokenizer
    batch = DataCollatorWithPadding(tok)(
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
    result = finetune_instructions(saved_model, JSON_PATH, epochs=5, batch_size=4, learning_rate=3e-3)
    held_out = result.metrics["held_out"]
    assert len(held_out) == 5
    assert result.metrics["eval_loss"] < result.metrics["eval_loss_before"]

    # Measured here, independently of Trainer: the response-only loss on entries it trained on.
    entries = [e for i, e in enumerate(load_instructions(JSON_PATH)) if i not in held_out][:16]
    tok = result.tokenizer
    batch = DataCollatorForSeq2Seq(tok, label_pad_token_id=IGNORE_INDEX)(
        list(build_instruction_dataset(entries, tok, 96))
    )
    before = HFGPTForCausalLM.from_pretrained(saved_model).eval()
    after = result.model.cpu().eval()
    with torch.no_grad():
        loss_before, loss_after = before(**batch).loss.item(), after(**batch).loss.item()
    assert loss_after < loss_before - 1.0


def test_recipes_name_a_missing_model_directory(tmp_path):
    with pytest.raises(FileNotFoundError, match="hfgpt train"):
        finetune_instructions(tmp_path / "nowhere", JSON_PATH)


def row_by_row_accuracy(result) -> float:
    import numpy as np

    from hfgpt.data.finetuning import read_labelled_csv
    from hfgpt.data.split import choose

    texts, names = read_labelled_csv(CSV_PATH)
    labels = sorted(set(names))
    held = choose(np.ones(len(texts)), 0.2, 123, unit="rows", cut=False).held_out  # the recipe's defaults
    model, right = result.model.cpu().eval(), 0
    with torch.no_grad():
        for i in held:
            ids = result.tokenizer(texts[i], add_special_tokens=False)["input_ids"][
                : model.config.context_length
            ]
            logits = model(torch.tensor([ids])).logits[0]
            right += labels[int(logits.argmax())] == names[i]
    return right / len(held)


def test_classifier_starts_from_a_saved_causal_lm(saved_model):
    result = finetune_classifier(saved_model, CSV_PATH, epochs=1, batch_size=16)
    base = HFGPTForCausalLM.from_pretrained(saved_model)
    assert result.model.config.num_labels == 2
    assert result.model.config.pad_token_id == result.tokenizer.eos_token_id
    # the reported accuracy is the share of held-out rows whose highest logit is their label, recounted here
    # one row at a time (no padding) on the rows the split holds out
    assert result.metrics["eval_accuracy"] == pytest.approx(row_by_row_accuracy(result), abs=1e-9)
    # The transformer came from the saved model: one short epoch moves its embeddings much less than the
    # distance between two independent initialisations (about 0.0226 mean absolute difference at std 0.02).
    moved = (result.model.transformer.wte.weight.cpu() - base.transformer.wte.weight).abs().mean()
    assert moved < 0.01


@pytest.mark.parametrize(
    "script", ["pretrain", "finetune_continue", "classify", "classify_lora", "instruction_finetune"]
)
def test_example_scripts_start_and_describe_themselves(script):
    path = EXAMPLES.parent / f"{script}.py"
    done = subprocess.run([sys.executable, str(path), "--help"], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert "--output-dir" in done.stdout and "--epochs" in done.stdout
