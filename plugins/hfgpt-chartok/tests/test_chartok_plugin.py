"""The chars strategy through its installed entry point: discovery, the CLI, round trips, save/load."""

import importlib.metadata
import json
import subprocess
import sys

from hfgpt_chartok import CharTokenizer

from hfgpt.data.sources import default_corpus_path
from hfgpt.plugins import get_tokenizer_class, list_plugins

VERDICT = default_corpus_path()


def test_discovered_through_the_installed_entry_point():
    (ep,) = [ep for ep in importlib.metadata.entry_points(group="hfgpt") if ep.name == "chartok"]
    assert ep.value == "hfgpt_chartok"
    (entry,) = [e for e in list_plugins() if e["name"] == "chartok"]
    assert entry["distribution"] == "hfgpt-chartok" and entry["registered"] == {"tokenizer": ["chars"]}


def test_cli_counts_one_token_per_character(tmp_path):
    out = subprocess.run(
        [sys.executable, "-m", "hfgpt", "tokenize", "--tokenizer", "chars", "--json", str(VERDICT)],
        capture_output=True, text=True, timeout=120, check=True,
    )  # fmt: skip
    result = json.loads(out.stdout)
    text = VERDICT.read_text()
    assert result["total"]["tokens"] == len(text) == 20479
    assert result["vocab_size"] == len(set(text)) + 2


def test_round_trip_specials_and_save_load(tmp_path):
    text = VERDICT.read_text()
    tok = get_tokenizer_class("chars").from_corpus([text])
    sample = text[:300]
    ids = tok.encode(sample)
    assert ids == [sorted(set(text)).index(c) for c in sample]  # by hand: sorted characters
    assert tok.decode(ids) == sample
    assert tok.encode("a<|endoftext|>b") == [tok.vocab["a"], tok.eos_token_id, tok.vocab["b"]]
    assert tok.encode("€") == [tok.unk_token_id]  # not in the story
    tok.save_pretrained(tmp_path)
    assert CharTokenizer.from_pretrained(tmp_path).encode(sample) == ids
