"""`hfgpt export`: hfgpt models as stock GPT-2 / GPT-NeoX directories, checked against transformers' own classes
and against real consumers that never import hfgpt.

* In process: `convert_model` gives transformers' `GPT2LMHeadModel` / `GPTNeoXForCausalLM` whose float32 logits
  equal hfgpt's within 1e-5 at several lengths (beyond the context for rope) and whose greedy tokens are
  identical, for tiny random models of every exported option and for two trained ones; NeoX's rotary
  frequencies (transformers' own rope code) equal hfgpt's.
* The directory and the command: files, config, refusals (one line, exit 2, nothing written), overwrite, a
  failure that leaves nothing behind.
* Consumers, each in a process that cannot import hfgpt: transformers alone, CTranslate2 and ONNX Runtime.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch
from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer, GPT2Config, GPT2LMHeadModel

import hfgpt
import hfgpt.export as export_module
from hfgpt.cli import main
from hfgpt.data.sources import default_corpus_path
from hfgpt.errors import ConfigError
from hfgpt.export import convert_model, export_model, export_target, rope_parameters
from hfgpt.testing import train_steps

STORY = default_corpus_path().read_text(encoding="utf-8")
PROMPT = "I had always thought Jack Gisburn rather a cheap genius"
VOCAB = 97
TOLERANCE = 1e-5
BEYOND = 32  # tokens past the context that rope models run on

# name -> HFGPTConfig fields over `tiny()`
CASES = {
    "learned": dict(position_encoding="learned"),
    "learned-qkv-bias-untied": dict(position_encoding="learned", qkv_bias=True, tie_word_embeddings=False),
    "rope": dict(position_encoding="rope"),
    "rope-theta-qkv-bias-untied": dict(
        position_encoding="rope",
        position_encoding_kwargs={"theta": 500.0},
        qkv_bias=True,
        tie_word_embeddings=False,
    ),
    "rope-linear": dict(
        position_encoding="rope", position_encoding_kwargs={"scaling": "linear", "factor": 4.0}
    ),
    "rope-ntk": dict(position_encoding="rope", position_encoding_kwargs={"scaling": "ntk", "factor": 4.0}),
    "rope-yarn": dict(position_encoding="rope", position_encoding_kwargs={"scaling": "yarn", "factor": 4.0}),
    "rope-yarn-options": dict(
        position_encoding="rope",
        position_encoding_kwargs={
            "scaling": "yarn",
            "factor": 2.0,
            "original_context_length": 8,
            "beta_fast": 16.0,
            "beta_slow": 2.0,
            "theta": 2000.0,
        },
    ),
}


def tiny(seed: int = 0, **fields) -> hfgpt.HFGPTForCausalLM:
    """The tiny preset (2 layers, 4 heads of 8) with a context of 16 positions, so that rope runs well past it."""
    config = hfgpt.HFGPTConfig.from_preset("tiny", **{"vocab_size": VOCAB, "context_length": 16, **fields})
    torch.manual_seed(seed)
    return hfgpt.HFGPTForCausalLM(config).eval()


def lengths(model) -> list[int]:
    """1, a few tokens, the whole context, and for rope 32 tokens past it."""
    context = model.config.context_length
    return [1, 7, context] + ([context + BEYOND] if model.config.position_encoding == "rope" else [])


def greedy(model, prompt: list[int], new_tokens: int) -> list[int]:
    ids = torch.tensor([prompt])
    out = model.generate(
        ids,
        attention_mask=torch.ones_like(ids),
        max_new_tokens=new_tokens,
        min_new_tokens=new_tokens,
        do_sample=False,
        pad_token_id=0,
    )
    return out[0].tolist()


def new_tokens_for(model, prompt_length: int) -> int:
    """Up to the end of the context for learned; for rope, to 32 tokens past it."""
    context = model.config.context_length
    return context - prompt_length + (BEYOND if model.config.position_encoding == "rope" else 0)


@pytest.fixture(autouse=True, scope="module")
def one_thread():
    """Tiny models gain nothing from intra-op threads, and on a shared 2-core machine two threads per process
    made training ten times slower."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


# --- conversions in process -------------------------------------------------------------------------------------
@pytest.mark.parametrize("case", list(CASES))
def test_logits_and_greedy_tokens_equal_hfgpts(case):
    model = tiny(**CASES[case])
    exported = convert_model(model)
    expected_class = "GPT2LMHeadModel" if case.startswith("learned") else "GPTNeoXForCausalLM"
    assert type(exported).__name__ == expected_class
    generator = torch.Generator().manual_seed(1)
    with torch.no_grad():
        for length in lengths(model):
            ids = torch.randint(0, VOCAB, (2, length), generator=generator)
            want, got = model(ids).logits, exported(ids).logits
            assert (want - got).abs().max() <= TOLERANCE, (case, length)
    prompt = torch.randint(0, VOCAB, (5,), generator=generator).tolist()
    new = new_tokens_for(model, len(prompt))
    assert greedy(exported, prompt, new) == greedy(model, prompt, new)


@pytest.mark.parametrize("case", [name for name in CASES if name.startswith("rope")])
def test_neox_rotary_frequencies_are_hfgpts(case):
    model = tiny(**CASES[case])
    rotary = convert_model(model).gpt_neox.rotary_emb  # transformers' rope code and rope_parameters
    ours = model.transformer.position_encoding
    torch.testing.assert_close(rotary.inv_freq, ours.inv_freq, rtol=1e-6, atol=0)
    assert rotary.attention_scaling == pytest.approx(ours.attention_factor, rel=1e-12)


def test_gpt2_export_round_trips_through_from_gpt2():
    torch.manual_seed(0)
    gpt2 = GPT2LMHeadModel(
        GPT2Config(vocab_size=VOCAB, n_positions=32, n_embd=48, n_layer=2, n_head=4)
    ).eval()
    again = convert_model(hfgpt.from_gpt2(gpt2).eval())
    original, exported = gpt2.state_dict(), again.state_dict()
    assert original.keys() == exported.keys()
    for name, tensor in original.items():
        assert torch.equal(exported[name], tensor), name


def test_export_keeps_the_dtype():
    model = tiny(position_encoding="rope").to(torch.bfloat16)
    exported = convert_model(model)
    assert exported.dtype == torch.bfloat16
    weight = model.transformer.h[0].mlp.fc.weight
    assert torch.equal(exported.gpt_neox.layers[0].mlp.dense_h_to_4h.weight, weight)


@pytest.mark.parametrize(
    ("fields", "to", "message"),
    [
        (dict(position_encoding="sinusoidal"), "auto", "position_encoding='sinusoidal' has no stock"),
        (dict(position_encoding="none"), "auto", "what exports: learned -> GPT-2"),
        (dict(position_encoding="learned"), "gpt-neox", "is gpt2 (GPT2LMHeadModel), not gpt-neox"),
        (dict(position_encoding="rope"), "gpt2", "is gpt-neox (GPTNeoXForCausalLM), not gpt2"),
    ],
)
def test_what_does_not_export_is_refused_in_one_line(fields, to, message):
    with pytest.raises(ConfigError, match=message.replace("(", r"\(").replace(")", r"\)")) as error:
        convert_model(tiny(**fields), to=to)
    assert "\n" not in str(error.value)


def test_rope_options_that_neox_cannot_express_are_refused():
    config = {"model_type": "hfgpt", "position_encoding": "rope", "emb_dim": 32, "n_heads": 4}
    for options, message in (
        ({"scaling": "dynamic", "factor": 2.0}, "rope scaling 'dynamic' has no GPT-NeoX equivalent"),
        ({"interleaved": True}, r"rope option\(s\) \['interleaved'\] have no GPT-NeoX equivalent"),
    ):
        with pytest.raises(ConfigError, match=message):
            export_target({**config, "position_encoding_kwargs": options})
    ntk = rope_parameters({**config, "position_encoding_kwargs": {"scaling": "ntk", "factor": 4.0}})
    assert ntk == {
        "rope_type": "default",
        "rope_theta": 10000.0 * 4.0 ** (8 / 6),
        "partial_rotary_factor": 1.0,
    }


# --- trained models and their exported directories --------------------------------------------------------------
def train_tiny(directory: Path, position_encoding: str, tokenizer) -> hfgpt.HFGPTForCausalLM:
    """A tiny model that has learned the story's opening (so greedy decoding follows the text instead of repeating
    one token), saved with its tokenizer as `hfgpt train` saves them."""
    ids = tokenizer.encode(STORY)[: 8 * 64]
    model = hfgpt.HFGPTForCausalLM(
        hfgpt.HFGPTConfig.from_preset(
            "tiny",
            position_encoding=position_encoding,
            vocab_size=len(tokenizer),
            drop_rate=0.0,
            eos_token_id=tokenizer.eos_token_id,
            tokenizer_class=type(tokenizer).__name__,
        )
    )
    torch.manual_seed(0)
    model.train()
    losses = train_steps(model, torch.tensor(ids).view(8, 64), steps=100)
    assert losses[-1] < losses[0] / 3, losses[::30]
    model.eval().save_pretrained(directory)
    tokenizer.save_pretrained(directory)
    return model


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """name -> (hfgpt model, hfgpt tokenizer, its directory, the exported directory)."""
    root = tmp_path_factory.mktemp("trained")
    models = {}
    for name, position_encoding, tokenizer in (
        ("learned-regex", "learned", hfgpt.RegexTokenizer.from_corpus(STORY)),
        ("rope-bpe", "rope", hfgpt.BPETokenizer.from_corpus(STORY, vocab_size=500)),
    ):
        model = train_tiny(root / name, position_encoding, tokenizer)
        export_model(root / name, root / f"{name}-export")
        models[name] = (model, tokenizer, root / name, root / f"{name}-export")
    # The trained rope model stretched with YaRN at export time, as `position_encoding_kwargs` allow.
    yarn = root / "rope-bpe-yarn"
    shutil.copytree(root / "rope-bpe", yarn)
    config = json.loads((yarn / "config.json").read_text())
    config["position_encoding_kwargs"] = {"scaling": "yarn", "factor": 4.0}
    (yarn / "config.json").write_text(json.dumps(config))
    export_model(yarn, root / "rope-bpe-yarn-export")
    model = hfgpt.HFGPTForCausalLM.from_pretrained(yarn).eval()
    models["rope-bpe-yarn"] = (model, models["rope-bpe"][1], yarn, root / "rope-bpe-yarn-export")
    return models


def reference(model, tokenizer) -> dict:
    """hfgpt's own outputs the consumers must reproduce: logits of the prompt and of a sequence as long as
    `lengths()` says, and the greedy continuation of the prompt."""
    prompt = tokenizer.encode(PROMPT)
    long = tokenizer.encode(STORY)[: lengths(model)[-1]]
    with torch.no_grad():
        logits = [model(torch.tensor([ids])).logits[0] for ids in (prompt, long)]
    return {
        "prompt": prompt,
        "long": long,
        "logits": logits,
        "greedy": greedy(model, prompt, new_tokens_for(model, len(prompt))),
    }


def test_trained_models_export_with_equal_logits_and_greedy_text(trained):
    for name, (model, tokenizer, _, exported_dir) in trained.items():
        exported = AutoModelForCausalLM.from_pretrained(exported_dir).eval()
        fast = AutoTokenizer.from_pretrained(exported_dir)
        want = reference(model, tokenizer)
        assert fast.encode(PROMPT) == want["prompt"], name
        with torch.no_grad():
            for ids, logits in zip((want["prompt"], want["long"]), want["logits"]):
                assert (exported(torch.tensor([ids])).logits[0] - logits).abs().max() <= TOLERANCE, name
        tokens = greedy(exported, want["prompt"], new_tokens_for(model, len(want["prompt"])))
        assert tokens == want["greedy"], name
        assert fast.decode(tokens) == tokenizer.decode(tokens), name
    learned_text = trained["learned-regex"][1].decode(reference(*trained["learned-regex"][:2])["greedy"])
    assert learned_text.startswith(PROMPT) and "--" in learned_text  # it continues the story


def test_the_exported_directory_is_stock(trained):
    _, _, model_dir, exported_dir = trained["rope-bpe-yarn"]
    files = sorted(p.name for p in exported_dir.iterdir())
    assert files == [
        "config.json",
        "generation_config.json",
        "model.safetensors",
        "tokenizer.json",
        "tokenizer_config.json",
    ]
    config = json.loads((exported_dir / "config.json").read_text())
    assert config["architectures"] == ["GPTNeoXForCausalLM"] and "auto_map" not in config
    assert config["use_parallel_residual"] is False and config["hidden_act"] == "gelu_pytorch_tanh"
    assert config["max_position_embeddings"] == 4 * 64  # the context yarn x4 stretches the trained 64 to
    # Keys of transformers 4's GPT-NeoX config, for consumers pinned to it; transformers 5 reads the same rope.
    assert config["rotary_pct"] == 1.0 and config["rotary_emb_base"] == 10000.0
    assert config["rope_scaling"]["rope_type"] == "yarn" and config["rope_scaling"]["factor"] == 4.0
    hfgpt_config = hfgpt.HFGPTConfig.from_pretrained(model_dir)
    assert AutoConfig.from_pretrained(exported_dir).rope_parameters == rope_parameters(hfgpt_config)
    tokenizer_config = json.loads((exported_dir / "tokenizer_config.json").read_text())
    assert (
        tokenizer_config["tokenizer_class"] == "PreTrainedTokenizerFast"
        and "auto_map" not in tokenizer_config
    )
    assert oct((exported_dir).stat().st_mode & 0o777) == oct(0o777 & ~_umask())


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


# --- the command: refusals, overwrite, failures -----------------------------------------------------------------
@pytest.fixture(scope="module")
def saved(tmp_path_factory) -> Path:
    """A tiny learned model with its word tokenizer, copied (and damaged) by the cases below."""
    path = tmp_path_factory.mktemp("saved")
    tokenizer = hfgpt.RegexTokenizer.from_corpus(STORY)
    config = hfgpt.HFGPTConfig.from_preset(
        "tiny", vocab_size=len(tokenizer), tokenizer_class="RegexTokenizer"
    )
    torch.manual_seed(0)
    hfgpt.HFGPTForCausalLM(config).save_pretrained(path)
    tokenizer.save_pretrained(path)
    return path


def edit_json(path: Path, **values) -> None:
    path.write_text(json.dumps({**json.loads(path.read_text()), **values}))


def prepare(how: str, model: Path, out: Path) -> None:
    """Damage the copied model directory or put something at OUT, as `how` says."""
    if how == "sinusoidal":
        edit_json(model / "config.json", position_encoding="sinusoidal")
    elif how == "alibi":
        pytest.importorskip("hfgpt_alibi")
        edit_json(model / "config.json", position_encoding="alibi")
    elif how == "rope scaling":
        edit_json(
            model / "config.json",
            position_encoding="rope",
            position_encoding_kwargs={"scaling": "dynamic", "factor": 2.0},
        )
    elif how == "gpt2 model":
        edit_json(model / "config.json", model_type="gpt2")
    elif how == "no tokenizer":
        (model / "tokenizer_config.json").unlink()
    elif how == "tokenizer class":
        edit_json(model / "tokenizer_config.json", tokenizer_class="T5Tokenizer")
    elif how == "out is a file":
        out.write_text("notes")
    elif how == "out holds a model":
        out.mkdir()
        (out / "config.json").write_text("{}")
    elif how == "out holds files":
        out.mkdir()
        (out / "notes.txt").write_text("mine")


# (how, argv after `export` with {model} and {out}, fragment of the one-line message)
REFUSALS = [
    (
        "sinusoidal",
        ["{model}", "{out}"],
        "position_encoding='sinusoidal' has no stock transformers architecture",
    ),
    ("alibi", ["{model}", "{out}"], "what exports: learned -> GPT-2 (GPT2LMHeadModel), rope -> GPT-NeoX"),
    ("rope scaling", ["{model}", "{out}"], "rope scaling 'dynamic' has no GPT-NeoX equivalent"),
    ("learned", ["{model}", "{out}", "--to", "gpt-neox"], "is gpt2 (GPT2LMHeadModel), not gpt-neox"),
    ("learned", ["{model}", "{out}", "--to", "llama"], "invalid choice: 'llama'"),
    ("gpt2 model", ["{model}", "{out}"], "is a 'gpt2' model, not an hfgpt one"),
    ("missing", ["{model}/missing", "{out}"], "is not a model directory"),
    ("no tokenizer", ["{model}", "{out}"], "has no tokenizer (tokenizer_config.json is missing)"),
    ("tokenizer class", ["{model}", "{out}"], "is a T5Tokenizer, which does not export as tokenizer.json"),
    ("out is a file", ["{model}", "{out}"], "exists and is not a directory"),
    ("out is a file", ["{model}", "{out}", "--overwrite"], "exists and is not a directory"),
    ("out holds a model", ["{model}", "{out}"], "already holds a model; pass --overwrite"),
    ("out holds files", ["{model}", "{out}"], "already holds files; pass --overwrite"),
    ("learned", ["{model}", "{model}/export"], "is the model directory"),
    ("learned", ["{model}", "{model}"], "is the model directory"),
]


def snapshot(root: Path) -> dict[str, tuple[int, int]]:
    return {
        str(p.relative_to(root)): (p.stat().st_size, p.stat().st_mtime_ns) for p in sorted(root.rglob("*"))
    }


@pytest.mark.parametrize(
    ("how", "argv", "expected"), REFUSALS, ids=[f"{r[0]} {' '.join(r[1][2:])}" for r in REFUSALS]
)
def test_refusals_exit_2_with_one_line_before_any_work(how, argv, expected, saved, tmp_path, capsys):
    model, out = tmp_path / "model", tmp_path / "out"
    shutil.copytree(saved, model)
    prepare(how, model, out)
    before = snapshot(tmp_path)
    try:
        code = main(["export", *(arg.format(model=model, out=out) for arg in argv)])
    except SystemExit as exit_:  # argparse's own errors
        code = exit_.code
    err = capsys.readouterr().err
    assert code == 2, err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("hfgpt export: error: "), err
    assert expected in lines[0]
    assert snapshot(tmp_path) == before  # nothing written, nothing left behind


def test_the_command_exports_and_verifies(saved, tmp_path, capsys):
    assert main(["export", str(saved), str(tmp_path / "out")]) == 0
    printed = capsys.readouterr().out
    assert "GPT2LMHeadModel (gpt2), tokenizer.json from its RegexTokenizer" in printed
    assert "verified: largest float32 logit difference" in printed and "tokenizer ids identical" in printed
    assert type(AutoModelForCausalLM.from_pretrained(tmp_path / "out")).__name__ == "GPT2LMHeadModel"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]  # no staging directory left


@pytest.mark.parametrize("strategy", ["gpt2-bpe", "bpe", "regex", "chars"])
def test_every_tokenizer_strategy_exports_with_its_ids(strategy, tmp_path):
    from hfgpt.plugins import get_tokenizer_class

    tokenizer = get_tokenizer_class(strategy).from_corpus([STORY[:5000]])
    model = tiny(position_encoding="rope", vocab_size=len(tokenizer), eos_token_id=tokenizer.eos_token_id)
    model.save_pretrained(tmp_path / "model")
    tokenizer.save_pretrained(tmp_path / "model")
    result = export_model(tmp_path / "model", tmp_path / "out")
    assert result.tokenizer_class == type(tokenizer).__name__
    fast = AutoTokenizer.from_pretrained(tmp_path / "out")
    text = PROMPT + " -- unheard-of words, café 日本 😀<|endoftext|>"
    assert fast.encode(text) == tokenizer.encode(text)
    assert fast.decode(tokenizer.encode(text)) == tokenizer.decode(tokenizer.encode(text))


def test_export_help_imports_neither_torch_nor_transformers():
    code = (
        "import sys\nfrom hfgpt.cli import main\ntry:\n    main(['export', '--help'])\nexcept SystemExit:\n"
        "    pass\nprint(sorted(m for m in ('torch', 'transformers') if m in sys.modules))"
    )
    env = {**os.environ, "HFGPT_DISABLE_PLUGIN_AUTOLOAD": "1"}
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=60)
    assert done.returncode == 0, done.stderr
    assert "--to {auto,gpt2,gpt-neox}" in done.stdout and done.stdout.strip().splitlines()[-1] == "[]"


def test_overwrite_replaces_only_after_success(saved, tmp_path, monkeypatch):
    out = tmp_path / "out"
    out.mkdir()
    (out / "config.json").write_text("{}")
    (out / "old.txt").write_text("the previous export")

    def broken(*args):
        raise RuntimeError("verification failed")

    monkeypatch.setattr(export_module, "verify_export", broken)
    with pytest.raises(RuntimeError, match="verification failed"):
        export_model(saved, out, overwrite=True)
    assert sorted(p.name for p in out.iterdir()) == ["config.json", "old.txt"]  # untouched
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]
    monkeypatch.undo()

    result = export_model(saved, out, overwrite=True)
    assert not (out / "old.txt").exists() and (out / "model.safetensors").is_file()
    assert result.output_dir == out and result.max_logit_difference <= TOLERANCE
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]


def test_a_failed_export_leaves_nothing(saved, tmp_path, monkeypatch):
    def broken(*args):
        raise RuntimeError("the disk is full")

    monkeypatch.setattr("transformers.PreTrainedTokenizerFast.save_pretrained", broken)
    with pytest.raises(RuntimeError, match="the disk is full"):
        export_model(saved, tmp_path / "nested" / "out")
    assert list((tmp_path / "nested").iterdir()) == []


def test_no_verify_skips_the_check(saved, tmp_path, monkeypatch):
    monkeypatch.setattr(export_module, "verify_export", lambda *args: pytest.fail("verified anyway"))
    result = export_model(saved, tmp_path / "out", verify=False)
    assert result.max_logit_difference is None and (tmp_path / "out" / "tokenizer.json").is_file()


# --- consumers in a process without hfgpt -----------------------------------------------------------------------
# The child runs with `python -S` (no site module: the .pth files of editable installs, which put hfgpt and its
# plugins on the path, are never read) and PYTHONPATH naming only the directories that hold torch, transformers and
# the consumer; its working directory is a temporary one. It checks first that `import hfgpt` fails.
CHILD_PRELUDE = """
import json, sys, warnings
warnings.filterwarnings("ignore")
try:
    import hfgpt
except ImportError:
    pass
else:
    print("HFGPT-IMPORTABLE", hfgpt.__file__)
    sys.exit(3)
assert not [m for m in sys.modules if m.startswith("hfgpt")]
import torch
torch.set_num_threads(1)
from transformers import AutoModelForCausalLM, AutoTokenizer
cases = json.loads(sys.argv[1])
results = {}
"""

CHILD_TRANSFORMERS = """
for name, case in cases.items():
    model = AutoModelForCausalLM.from_pretrained(case["dir"]).eval()
    tokenizer = AutoTokenizer.from_pretrained(case["dir"])
    with torch.no_grad():
        logits = [model(torch.tensor([ids])).logits[0] for ids in (case["prompt"], case["long"])]
        ids = torch.tensor([case["prompt"]])
        out = model.generate(ids, attention_mask=torch.ones_like(ids), max_new_tokens=case["new"],
                             min_new_tokens=case["new"], do_sample=False, pad_token_id=0)
    torch.save(logits, case["dir"] + "/child-logits.pt")
    results[name] = {"classes": [type(model).__name__, type(tokenizer).__name__],
                     "prompt": tokenizer.encode(case["text"]), "greedy": out[0].tolist()}
"""

CHILD_CTRANSLATE2 = """
import ctranslate2
from ctranslate2.converters.transformers import main as ct2_transformers_converter
from transformers import GPTNeoXConfig, GPTNeoXForCausalLM
# CTranslate2 4.8's GPT-NeoX loader reads two names of transformers 4 (where converters still run): the
# rotated fraction as config.rotary_pct (transformers 5 keeps it in rope_parameters) and the head as embed_out.
if not hasattr(GPTNeoXConfig, "rotary_pct"):
    GPTNeoXConfig.rotary_pct = property(lambda self: self.rope_parameters["partial_rotary_factor"])
if not hasattr(GPTNeoXForCausalLM, "embed_out"):
    GPTNeoXForCausalLM.embed_out = property(lambda self: self.lm_head)
for name, case in cases.items():
    converted = case["dir"] + "-ct2"  # what the ct2-transformers-converter command runs, in this process
    sys.argv = ["ct2-transformers-converter", "--model", case["dir"], "--output_dir", converted, "--force"]
    ct2_transformers_converter()
    tokenizer = AutoTokenizer.from_pretrained(case["dir"])
    generator = ctranslate2.Generator(converted, device="cpu", intra_threads=1)
    prompt = tokenizer.convert_ids_to_tokens(case["prompt"])
    # max_length counts the prompt after its first token; greedy: sampling_topk=1, one beam; min_length as
    # transformers' min_new_tokens (the end token is never chosen before it)
    length = len(prompt) - 1 + case["new"]
    result = generator.generate_batch([prompt], max_length=length, min_length=length, beam_size=1,
                                      sampling_topk=1, include_prompt_in_result=True)
    results[name] = {"greedy": result[0].sequences_ids[0]}
"""

CHILD_ONNXRUNTIME = """
import numpy as np
import onnxruntime

class Logits(torch.nn.Module):
    def __init__(self, model):
        super().__init__()
        self.model = model

    def forward(self, input_ids, attention_mask):
        return self.model(input_ids=input_ids, attention_mask=attention_mask, use_cache=False).logits

for name, case in cases.items():
    model = AutoModelForCausalLM.from_pretrained(case["dir"], attn_implementation="eager").eval()
    wrapper = Logits(model).eval()
    example = torch.tensor([case["prompt"]])
    path = case["dir"] + "-model.onnx"
    axes = {"input_ids": {0: "batch", 1: "sequence"}, "attention_mask": {0: "batch", 1: "sequence"}}
    # TorchScript exporter (dynamo=False): the torch.export one needs onnxscript, which is not installed
    torch.onnx.export(wrapper, (example, torch.ones_like(example)), path, input_names=list(axes),
                      output_names=["logits"], dynamic_axes=axes, dynamo=False)
    session = onnxruntime.InferenceSession(path, providers=["CPUExecutionProvider"])
    tokens = list(case["prompt"])
    for _ in range(case["new"]):  # greedy, the whole sequence each step (no cache in the graph)
        ids = np.array([tokens], dtype=np.int64)
        logits = session.run(None, {"input_ids": ids, "attention_mask": np.ones_like(ids)})[0][0, -1]
        logits[case["eos"]] = -np.inf  # as transformers' min_new_tokens
        tokens.append(int(logits.argmax()))
    results[name] = {"greedy": tokens}
"""


def run_child(code: str, cases: dict, tmp_path: Path, modules: tuple) -> dict:
    paths = []
    for module in (torch, *modules):
        site = str(Path(module.__file__).resolve().parents[1])
        if site not in paths:
            paths.append(site)
    env = {
        **{k: v for k, v in os.environ.items() if k != "PYTHONPATH"},
        "PYTHONPATH": os.pathsep.join(paths),
        "HF_HUB_OFFLINE": "1",
        "OMP_NUM_THREADS": "1",
    }
    done = subprocess.run(
        [
            sys.executable,
            "-S",
            "-c",
            textwrap.dedent(CHILD_PRELUDE + code) + "\nprint(json.dumps(results))\n",
            json.dumps(cases),
        ],
        capture_output=True,
        text=True,
        env=env,
        cwd=tmp_path,
        timeout=600,
    )
    if done.returncode == 3 and "HFGPT-IMPORTABLE" in done.stdout:
        pytest.skip(
            f"hfgpt is installed in {paths} itself (not as an editable install): no process without it"
        )
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


def child_cases(trained, names) -> tuple[dict, dict]:
    cases, references = {}, {}
    for name in names:
        model, tokenizer, _, exported_dir = trained[name]
        want = reference(model, tokenizer)
        references[name] = want
        cases[name] = {
            "dir": str(exported_dir),
            "text": PROMPT,
            "prompt": want["prompt"],
            "long": want["long"],
            "new": new_tokens_for(model, len(want["prompt"])),
            "eos": tokenizer.eos_token_id,
        }
    return cases, references


def test_transformers_alone_reproduces_hfgpt(trained, tmp_path):
    import transformers

    cases, references = child_cases(trained, list(trained))
    results = run_child(CHILD_TRANSFORMERS, cases, tmp_path, (transformers,))
    for name, want in references.items():
        got = results[name]
        expected_class = "GPT2LMHeadModel" if name.startswith("learned") else "GPTNeoXForCausalLM"
        assert got["classes"] == [expected_class, "TokenizersBackend"], name
        assert got["prompt"] == want["prompt"], name
        child_logits = torch.load(Path(cases[name]["dir"]) / "child-logits.pt")
        for child, ours in zip(child_logits, want["logits"]):
            assert (child - ours).abs().max() <= TOLERANCE, name
        assert got["greedy"] == want["greedy"], name


@pytest.mark.slow  # about 5 s of CPU each (a child importing torch, converting, generating), 15 s on a busy machine
@pytest.mark.parametrize(
    ("consumer", "code"),
    [("ctranslate2", CHILD_CTRANSLATE2), ("onnxruntime", CHILD_ONNXRUNTIME)],
)
def test_consumers_generate_hfgpts_greedy_tokens(consumer, code, trained, tmp_path):
    import transformers

    module = pytest.importorskip(consumer, reason=f"{consumer} is not installed (pip install hfgpt[export])")
    # CTranslate2's GPT-NeoX reads neither rope_theta nor rope scaling: only the unscaled rope model converts.
    names = ["learned-regex", "rope-bpe"]
    cases, references = child_cases(trained, names)
    results = run_child(code, cases, tmp_path, (transformers, module))
    for name in names:
        assert results[name]["greedy"] == references[name]["greedy"], (consumer, name)
