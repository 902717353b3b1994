"""Fine-tuning a text encoder with MC dropout, confined to the top layers (engine.text_finetune), on a tiny BERT
built here (two layers, 32 wide, a 30-word vocabulary): no download, a second per test."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pytest
import torch

from engine.recipes import train_config
from engine.scoring import MCDropout, concat_chunks, iter_batches, score_chunks
from engine.text_finetune import TextFinetuneModel, TrainOnlyDropout, new_finetune_model
from engine.training import train_classifier

TEXTS = [
    "the striker scored a goal",
    "the team won the match",
    "the chef baked bread",
    "a cake in the oven",
    "the bank rates",
    "shares market the bank",
]
WORDS = sorted({w for text in TEXTS for w in text.split()})


def tiny_bert_folder(path: Path, *, layers: int = 2, words: list[str] | None = None, seed: int = 0) -> Path:
    """A Hugging Face folder (config, weights, tokenizer) of a randomly initialised tiny BERT over ``words``."""
    from transformers import BertConfig, BertModel, BertTokenizerFast

    path.mkdir(parents=True, exist_ok=True)
    vocab = path / "vocab.txt"
    words = WORDS if words is None else words
    vocab.write_text("\n".join(["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", *words]) + "\n")
    tokenizer = BertTokenizerFast(vocab=str(vocab))  # transformers 5 ignores vocab_file=
    torch.manual_seed(seed)
    config = BertConfig(
        vocab_size=len(words) + 5,
        hidden_size=32,
        num_hidden_layers=layers,
        num_attention_heads=2,
        intermediate_size=64,
        max_position_embeddings=64,
        hidden_dropout_prob=0.2,
    )
    BertModel(config).save_pretrained(path)
    tokenizer.save_pretrained(path)
    return path


@pytest.fixture(scope="module")
def folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tiny_bert_folder(tmp_path_factory.mktemp("tiny-bert"))


def test_split_reproduces_the_encoder_and_the_mask_follows(folder: Path) -> None:
    from transformers import AutoModel

    model = new_finetune_model(folder, 3, mc_layers=1, seed=0).eval()
    x = torch.as_tensor(model.tokenize(TEXTS))
    assert x.shape == (len(TEXTS), 2, 64) and x.dtype == torch.int64
    reference = AutoModel.from_pretrained(str(folder)).eval()
    with torch.no_grad():
        z = model.features(x)
        length = z.shape[1]
        assert length == int(x[:, 1].sum(dim=1).max())  # trimmed to the longest real sequence
        assert torch.equal(z[..., -1], x[:, 1, :length].float())  # the mask rides along as the last channel
        hidden = model.head.layers[0](z[..., :-1], _additive(x[:, 1, :length]))
        expected = reference(input_ids=x[:, 0, :length], attention_mask=x[:, 1, :length]).last_hidden_state
        real = x[:, 1, :length].bool()
        assert torch.allclose(hidden[real], expected[real], atol=1e-5)
        assert torch.equal(model(x), model.head(model.features(x)))


def _additive(mask: torch.Tensor) -> torch.Tensor:
    return (1.0 - mask[:, None, None, :].float()) * torch.finfo(torch.float32).min


def test_confined_mc_runs_the_lower_layers_once_and_matches_the_whole_network(folder: Path) -> None:
    model = new_finetune_model(folder, 3, mc_layers=2, seed=0)
    lower = [m for m in model.features.modules() if isinstance(m, TrainOnlyDropout)]
    assert lower, "the embeddings' dropout is deterministic at scoring when MC is confined"
    x = torch.as_tensor(model.tokenize(TEXTS))
    fast = MCDropout(model, iterations=1)
    plain = MCDropout(model, iterations=1, mode="plain")
    torch.manual_seed(1)
    a, _ = fast(x)
    torch.manual_seed(1)
    b, _ = plain(x)
    # mc_layers = every layer: the features-once path draws the same masks as the whole model run once.
    assert fast.mode == "fast" and np.allclose(a, b, atol=1e-6)

    top = new_finetune_model(folder, 3, mc_layers=1, seed=0)
    sampler = MCDropout(top, iterations=8, embeddings=True)
    chunk = concat_chunks(score_chunks(sampler, iter_batches(x, 4), heuristic="bald", keep_samples=True))
    assert chunk.samples is not None and chunk.embeddings is not None and chunk.embeddings.shape == (6, 32)
    assert np.allclose(chunk.samples.sum(axis=1), 1.0, atol=1e-5)
    assert chunk.samples.std(axis=2).max() > 1e-4  # the top layer's and the head's dropout do sample
    assert sampler.mode == "fast"


def test_whole_network_mc_samples_every_layer_with_the_same_weights(folder: Path) -> None:
    model = new_finetune_model(folder, 3, mc_layers=1, seed=0).eval()
    full = model.with_mc_layers(None)
    assert not any(isinstance(m, TrainOnlyDropout) for m in full.modules())
    x = torch.as_tensor(model.tokenize(TEXTS))
    with torch.no_grad():
        assert torch.allclose(model(x), full(x), atol=1e-6)  # eval mode: the same function
    sampler = MCDropout(full, iterations=5)
    probs, _ = sampler(x)
    assert sampler.mode == "plain"  # dropout from the embeddings on: nothing to run once
    assert probs.std(axis=2).max() > 1e-4


def test_training_uses_a_lower_rate_for_the_encoder_and_pickles_with_its_tokenizer(folder: Path) -> None:
    model = new_finetune_model(folder, 3, mc_layers=1, seed=0)
    config = train_config(model, seed=0, epochs=2, min_steps=6)
    groups = model.optimizer_groups(config.lr)
    assert groups[0]["lr"] < groups[1]["lr"] == config.lr
    assert {id(p) for p in groups[1]["params"]} == {id(p) for p in model.head.classifier.parameters()}
    x = torch.as_tensor(model.tokenize(TEXTS * 3))
    y = torch.as_tensor([0, 0, 1, 1, 2, 2] * 3)
    before = model.features.embeddings.word_embeddings.weight.detach().clone()
    result = train_classifier(model, (x, y), (x[:6], y[:6]), num_classes=3, config=config)
    assert result.epochs_run >= 2
    assert not torch.equal(before, result.model.features.embeddings.word_embeddings.weight)

    buf = io.BytesIO()
    torch.save(result.model, buf)
    buf.seek(0)
    reloaded = torch.load(buf, weights_only=False)
    assert isinstance(reloaded, TextFinetuneModel)
    assert np.array_equal(reloaded.tokenize(TEXTS), result.model.tokenize(TEXTS))
    with torch.no_grad():
        assert torch.equal(reloaded.eval()(x), result.model.eval()(x))


def test_a_half_layer_samples_only_the_top_feed_forward_block(folder: Path) -> None:
    """mc_layers 0.5: the top layer's self-attention runs once with the lower layers; its feed-forward block and
    the head are sampled. Same weights, same function as the whole network in eval mode."""
    model = new_finetune_model(folder, 3, mc_layers=1, seed=0).eval()
    half = model.with_mc_layers(0.5)
    assert half.head.split is not None and half.features.split_attention is half.head.split.attention
    assert len(half.features.layers) == 1 and len(half.head.layers) == 0
    sampled = [m for m in half.head.modules() if type(m) is torch.nn.Dropout]
    attention = {id(m) for m in half.head.split.attention.modules()}
    assert sampled and not any(id(m) in attention for m in sampled)  # only the feed-forward's and the head's
    x = torch.as_tensor(model.tokenize(TEXTS))
    with torch.no_grad():
        assert torch.allclose(half(x), model.with_mc_layers(None)(x), atol=1e-5)
        assert torch.allclose(half.head(half.features(x)), half(x))
    sampler = MCDropout(half, iterations=8)
    probs, _ = sampler(x)
    assert sampler.mode == "fast" and probs.std(axis=2).max() > 1e-4
    # The attention is one module in both parts: saved and reloaded, it stays one set of weights.
    buf = io.BytesIO()
    torch.save(half, buf)
    buf.seek(0)
    reloaded = torch.load(buf, weights_only=False)
    assert reloaded.features.split_attention is reloaded.head.split.attention
    assert half.with_mc_layers(2).head.split is None and half.with_mc_layers(1.5).head.split is not None


@pytest.mark.parametrize("bad", [0, 0.25, 1.25, 3])
def test_mc_layers_outside_half_steps_of_the_depth_is_refused(folder: Path, bad: float) -> None:
    from engine.text_finetune import EncoderError

    with pytest.raises(EncoderError, match=r"steps of 0\.5"):
        new_finetune_model(folder, 3, mc_layers=bad, seed=0)
