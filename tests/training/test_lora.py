"""LoRA fine-tuning through peft: frozen base weights, adapters that reload and merge, errors up front."""

import importlib.util
import json
import sys
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file
from transformers import AutoModelForCausalLM, AutoModelForSequenceClassification, DataCollatorWithPadding

from hfgpt import HFGPTConfig, HFGPTForCausalLM, HFGPTForSequenceClassification, RegexTokenizer
from hfgpt.data.finetuning import format_alpaca, load_instructions, read_labelled_csv
from hfgpt.errors import ConfigError, OutputDirError
from hfgpt.training.finetuning import continue_pretraining, finetune_classifier, finetune_instructions

EXAMPLES = Path(__file__).resolve().parents[2] / "examples" / "data"
CSV_PATH = EXAMPLES / "sms_spam.csv"
JSON_PATH = EXAMPLES / "instructions.json"
RANK = 4

needs_peft = pytest.mark.skipif(
    importlib.util.find_spec("peft") is None, reason="LoRA needs peft: pip install 'hfgpt[lora]'"
)


def lora(**overrides):
    from peft import LoraConfig

    return LoraConfig(**{"r": RANK, "lora_alpha": 2 * RANK, "lora_dropout": 0.0, **overrides})


@pytest.fixture(scope="module")
def saved_model(tmp_path_factory):
    """A tiny untrained causal LM with a word-level tokenizer that knows the words of the example data."""
    directory = tmp_path_factory.mktemp("lora") / "base"
    texts = [e["instruction"] + " " + e["input"] + " " + e["output"] for e in load_instructions(JSON_PATH)]
    texts += [format_alpaca({"instruction": "x", "input": "y"}), *read_labelled_csv(CSV_PATH)[0]]
    tok = RegexTokenizer.from_corpus(texts)
    config = HFGPTConfig.from_preset(
        "tiny", context_length=96, drop_rate=0.0, vocab_size=len(tok), eos_token_id=tok.eos_token_id
    )
    torch.manual_seed(0)
    HFGPTForCausalLM(config).save_pretrained(directory)
    tok.save_pretrained(directory)
    return directory


def corpus() -> str:
    return " ".join(e["output"] for e in load_instructions(JSON_PATH)) * 2


@pytest.fixture(scope="module")
def causal_run(saved_model):
    """continue_pretraining with LoRA, given the base model as a path relative to the working directory."""
    with pytest.MonkeyPatch.context() as patch:
        patch.chdir(saved_model.parent)
        result = continue_pretraining(
            Path(saved_model.name),
            corpus(),
            "adapter",
            epochs=6,
            batch_size=2,
            learning_rate=1e-2,
            lora=lora(),
        )
    result.model.cpu().eval()
    return result, saved_model.parent / "adapter"


@pytest.fixture(scope="module")
def classifier_run(saved_model):
    out = saved_model.parent / "classifier-adapter"
    result = finetune_classifier(
        saved_model, CSV_PATH, out, epochs=3, batch_size=8, learning_rate=5e-3, lora=lora()
    )
    result.model.cpu().eval()
    return result, out


def base_tensors_after(peft_model) -> dict[str, torch.Tensor]:
    """The frozen model's own tensors inside a PeftModel, under the names they have in the saved model."""
    found = {}
    for name, tensor in peft_model.get_base_model().state_dict().items():
        if "lora_" in name or "modules_to_save" in name:
            continue
        found[name.replace(".base_layer.", ".").replace(".original_module.", ".")] = tensor
    return found


def assert_base_unchanged(peft_model, base_dir: Path) -> None:
    before = load_file(str(base_dir / "model.safetensors"))
    after = base_tensors_after(peft_model)
    for name, tensor in before.items():
        assert torch.equal(after[name].cpu(), tensor), f"{name} changed"
    if "transformer.wte.weight" in before and "lm_head.weight" in after:  # tied: saved once
        assert torch.equal(after["lm_head.weight"].cpu(), before["transformer.wte.weight"])


def some_ids(tokenizer, text="the model writes a short answer to the question") -> torch.Tensor:
    return torch.tensor([tokenizer(text, add_special_tokens=False)["input_ids"]])


# --- causal language models ---------------------------------------------------------------------------------
@needs_peft
def test_causal_lora_trains_only_the_adapters_and_leaves_every_base_tensor_as_saved(causal_run, saved_model):
    result, _ = causal_run
    assert_base_unchanged(result.model, saved_model)
    config = HFGPTConfig.from_pretrained(saved_model)
    d = config.emb_dim
    # By hand: rank * (in + out) for A (rank x in) and B (out x rank) of qkv, out_proj, fc and proj per block.
    per_block = RANK * ((d + 3 * d) + (d + d) + (d + 4 * d) + (4 * d + d))
    assert result.metrics["trainable_parameters"] == config.n_layers * per_block
    trainable = {n for n, p in result.model.named_parameters() if p.requires_grad}
    assert trainable and all(".lora_A." in n or ".lora_B." in n for n in trainable)
    # The adapters moved (B starts at zero) and the held-out loss fell.
    assert any(p.abs().sum() > 0 for n, p in result.model.named_parameters() if ".lora_B." in n)
    assert result.metrics["loss_after"] < result.metrics["loss_before"]


@needs_peft
def test_the_adapter_reloads_with_peft_from_another_working_directory(
    causal_run, saved_model, tmp_path, monkeypatch
):
    from peft import AutoPeftModelForCausalLM

    result, out = causal_run
    assert {"adapter_config.json", "adapter_model.safetensors", "tokenizer_config.json"} <= {
        p.name for p in out.iterdir()
    }
    assert not (out / "model.safetensors").exists()
    recorded = json.loads((out / "adapter_config.json").read_text())["base_model_name_or_path"]
    assert recorded == str(saved_model.resolve())  # given as a relative path; recorded absolute

    monkeypatch.chdir(tmp_path)
    reloaded = AutoPeftModelForCausalLM.from_pretrained(str(out)).eval()
    ids = some_ids(result.tokenizer)
    with torch.no_grad():
        expected, got = result.model(input_ids=ids).logits, reloaded(input_ids=ids).logits
    torch.testing.assert_close(got, expected, rtol=0, atol=0)
    # ...and the adapter is not a no-op: the base model alone answers differently.
    with torch.no_grad():
        plain = HFGPTForCausalLM.from_pretrained(saved_model).eval()(input_ids=ids).logits
    assert not torch.allclose(plain, expected, atol=1e-3)


@needs_peft
def test_generate_on_the_lora_model_is_its_own_greedy_decoding(causal_run):
    result, _ = causal_run
    model, ids = result.model, some_ids(result.tokenizer, "the")
    out = model.generate(
        input_ids=ids, attention_mask=torch.ones_like(ids), max_new_tokens=8, do_sample=False
    )
    # Greedy decoding by hand: the full forward (no cache) and the argmax, one token at a time.
    expected = ids
    with torch.no_grad():
        for _ in range(8):
            next_id = model(input_ids=expected).logits[:, -1].argmax(-1, keepdim=True)
            expected = torch.cat([expected, next_id], dim=-1)
    assert out.tolist() == expected.tolist()


@needs_peft
def test_merged_adapter_is_an_ordinary_hfgpt_model_with_the_adapter_logits(causal_run, saved_model, tmp_path):
    from transformers import AutoTokenizer

    from hfgpt.training.lora import merge_lora

    result, out = causal_run
    merged_dir = merge_lora(out, tmp_path / "merged")
    merged = AutoModelForCausalLM.from_pretrained(merged_dir).eval()
    assert type(merged) is HFGPTForCausalLM
    assert not any("lora" in name for name in merged.state_dict())
    assert AutoTokenizer.from_pretrained(merged_dir).get_vocab() == result.tokenizer.get_vocab()
    ids = some_ids(result.tokenizer)
    with torch.no_grad():
        torch.testing.assert_close(merged(input_ids=ids).logits, result.model(input_ids=ids).logits)
    # The merge changed the projections it folded the adapters into, and nothing else.
    before, after = (
        load_file(str(saved_model / "model.safetensors")),
        load_file(str(merged_dir / "model.safetensors")),
    )
    assert before.keys() == after.keys()
    changed = {name for name in before if not torch.equal(before[name], after[name])}
    assert changed == {
        f"transformer.h.{i}.{m}.weight"
        for i in range(2)
        for m in ("attn.qkv", "attn.out_proj", "mlp.fc", "mlp.proj")
    }
    with pytest.raises(OutputDirError, match="overwrite"):
        merge_lora(out, merged_dir)


@needs_peft
def test_instruction_tuning_with_lora(saved_model, tmp_path):
    result = finetune_instructions(
        saved_model, JSON_PATH, tmp_path / "instruct", epochs=1, batch_size=8, learning_rate=1e-2, lora=True
    )
    assert_base_unchanged(result.model, saved_model)
    assert result.metrics["eval_loss"] < result.metrics["eval_loss_before"]
    assert (tmp_path / "instruct" / "adapter_model.safetensors").is_file()


# --- classifiers --------------------------------------------------------------------------------------------
def padded_batch(tokenizer):
    texts = ["URGENT! You have won a cash prize, call now", "See you at the park after work"]
    return DataCollatorWithPadding(tokenizer)(
        [{"input_ids": tokenizer(t, add_special_tokens=False)["input_ids"]} for t in texts]
    )


@needs_peft
def test_classifier_lora_trains_adapters_and_the_whole_new_head(classifier_run, saved_model):
    result, _ = classifier_run
    assert_base_unchanged(result.model, saved_model)
    config = HFGPTConfig.from_pretrained(saved_model)
    d = config.emb_dim
    per_block = RANK * ((d + 3 * d) + (d + d) + (d + 4 * d) + (4 * d + d))
    head = d * 2  # score: emb_dim x 2 labels, no bias
    assert result.metrics["trainable_parameters"] == config.n_layers * per_block + head
    head_now = result.model.base_model.model.score.modules_to_save["default"].weight
    head_init = result.model.base_model.model.score.original_module.weight
    assert not torch.equal(head_now, head_init)
    metrics = result.metrics
    assert metrics["eval_accuracy"] > metrics["eval_majority_rate"] + 0.1


@needs_peft
def test_classifier_adapter_reloads_and_merges(classifier_run, tmp_path, monkeypatch):
    from peft import AutoPeftModelForSequenceClassification

    from hfgpt.training.lora import load_lora, merge_lora, read_classifier_settings

    result, out = classifier_run
    batch = padded_batch(result.tokenizer)
    assert (batch["attention_mask"] == 0).any()  # the head must find the last real token of each row
    with torch.no_grad():
        expected = result.model(**batch).logits

    monkeypatch.chdir(tmp_path)
    settings = read_classifier_settings(out)
    assert settings["id2label"] == {0: "ham", 1: "spam"}
    reloaded = AutoPeftModelForSequenceClassification.from_pretrained(str(out), **settings).eval()
    with torch.no_grad():
        torch.testing.assert_close(reloaded(**batch).logits, expected, rtol=0, atol=0)
        torch.testing.assert_close(load_lora(out)(**batch).logits, expected, rtol=0, atol=0)

    merged_dir = merge_lora(out, "merged")
    merged = AutoModelForSequenceClassification.from_pretrained(merged_dir).eval()
    assert type(merged) is HFGPTForSequenceClassification
    assert merged.config.id2label == {0: "ham", 1: "spam"}
    with torch.no_grad():
        torch.testing.assert_close(merged(**batch).logits, expected)


# --- errors ---------------------------------------------------------------------------------------------------
@needs_peft
@pytest.mark.parametrize(
    "overrides, message",
    [
        ({"r": 0}, "rank must be a positive integer"),
        ({"r": -2}, "rank must be a positive integer"),
        ({"lora_alpha": 0}, "alpha must be a positive number"),
        ({"lora_dropout": 1.0}, "dropout must be in"),
        ({"task_type": "SEQ_CLS"}, "task_type"),
    ],
)
def test_bad_lora_settings_are_one_error_before_any_work(saved_model, tmp_path, overrides, message):
    out = tmp_path / "never"
    with pytest.raises(ConfigError, match=message):
        continue_pretraining(saved_model, corpus(), out, lora=lora(**overrides))
    assert not out.exists() and not out.with_name("never.partial").exists()


@needs_peft
def test_target_modules_the_model_lacks_are_named(saved_model, tmp_path):
    out = tmp_path / "never"
    with pytest.raises(ConfigError, match=r"q_proj.*target some of .*qkv"):
        finetune_instructions(saved_model, JSON_PATH, out, lora=lora(target_modules=["qkv", "q_proj"]))
    with pytest.raises(ConfigError, match="modules_to_save classifier_head"):
        finetune_classifier(saved_model, CSV_PATH, out, lora=lora(modules_to_save=["classifier_head"]))
    assert not out.exists() and not (out.with_name("never.partial") / "checkpoints").exists()


@needs_peft
def test_a_model_without_hfgpt_projections_is_refused(tmp_path):
    from transformers import GPT2Config, GPT2LMHeadModel

    gpt2 = tmp_path / "gpt2"
    GPT2LMHeadModel(
        GPT2Config(n_layer=1, n_embd=16, n_head=2, vocab_size=64, n_positions=32)
    ).save_pretrained(gpt2)
    tok = RegexTokenizer.from_corpus(["a b c"])
    tok.save_pretrained(gpt2)
    with pytest.raises(
        ConfigError, match=r"fc, out_proj, proj, qkv match no linear layer of this GPT2LMHeadModel"
    ):
        continue_pretraining(gpt2, "a b c " * 50, lora=True)


@needs_peft
def test_other_lora_arguments_are_refused(tmp_path):
    from peft import IA3Config

    with pytest.raises(ConfigError, match="peft.LoraConfig or True"):
        continue_pretraining(tmp_path, "text", lora=IA3Config())
    with pytest.raises(ConfigError, match="random weights"):
        finetune_classifier(HFGPTConfig.from_preset("tiny"), CSV_PATH, lora=True)
    from hfgpt.training.lora import lora_config

    with pytest.raises(ConfigError, match="rank must be a positive integer, got 0"):
        lora_config(rank=0)


@needs_peft
def test_an_adapter_is_replaced_only_with_overwrite(causal_run, saved_model):
    _, out = causal_run
    with pytest.raises(OutputDirError, match="overwrite"):
        continue_pretraining(saved_model, corpus(), out, lora=True)


def test_without_peft_lora_names_the_extra(monkeypatch, saved_model):
    monkeypatch.setitem(sys.modules, "peft", None)  # `import peft` raises ImportError
    with pytest.raises(ConfigError, match=r"pip install 'hfgpt\[lora\]'"):
        continue_pretraining(saved_model, corpus(), lora=True)
    with pytest.raises(ConfigError, match=r"pip install 'hfgpt\[lora\]'"):
        finetune_classifier(saved_model, CSV_PATH, lora=True)


@needs_peft
def test_an_adapter_whose_base_model_moved_names_the_path(causal_run, tmp_path):
    import shutil

    from hfgpt.errors import ModelLoadError
    from hfgpt.training.lora import load_lora

    _, out = causal_run
    moved = shutil.copytree(out, tmp_path / "adapter")
    config = json.loads((moved / "adapter_config.json").read_text())
    config["base_model_name_or_path"] = str(tmp_path / "gone")
    (moved / "adapter_config.json").write_text(json.dumps(config))
    with pytest.raises(ModelLoadError, match="gone.*put the base model directory back"):
        load_lora(moved)
    with pytest.raises(FileNotFoundError, match="no LoRA adapter"):
        load_lora(tmp_path)
