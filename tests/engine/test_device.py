"""ALWEB_DEVICE: auto resolves to what this machine has, a bad value is a configuration error, and training and
scoring run on the resolved device (the CPU on these machines) with the same results as before."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from engine.architectures import TextHead
from engine.device import ENV, DeviceConfigError, autocast, resolve_device
from engine.scoring import MCDropout, concat_chunks, iter_batches, score_model
from engine.training import TrainConfig, model_device, train_classifier


def test_auto_is_the_default_and_resolves_to_the_cpu_without_cuda(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(ENV, raising=False)
    expected = "cuda" if torch.cuda.is_available() else "cpu"
    assert resolve_device().type == expected
    monkeypatch.setenv(ENV, "auto")
    assert resolve_device().type == expected
    monkeypatch.setenv(ENV, " CPU ")
    assert resolve_device() == torch.device("cpu")


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the CPU-only machine's answer")
def test_auto_is_the_cpu_here_and_cuda_is_refused_where_there_is_none(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(ENV, "auto")
    assert resolve_device() == torch.device("cpu")
    for value in ("cuda", "cuda:0"):
        monkeypatch.setenv(ENV, value)
        with pytest.raises(DeviceConfigError, match="no CUDA device"):
            resolve_device()


@pytest.mark.parametrize("value", ["gpu", "tpu", "cuda:x", "cpu0", "mps"])
def test_an_unknown_device_is_a_configuration_error_naming_the_variable(
    monkeypatch: pytest.MonkeyPatch, value: str
) -> None:
    monkeypatch.setenv(ENV, value)
    with pytest.raises(DeviceConfigError, match=rf"ALWEB_DEVICE='{value}' is not a device: use auto, cpu"):
        resolve_device()
    # An explicit argument is checked the same way, whatever the environment says.
    monkeypatch.setenv(ENV, "cpu")
    with pytest.raises(DeviceConfigError):
        resolve_device(value)


def test_no_mixed_precision_on_the_cpu() -> None:
    with autocast(torch.device("cpu")):
        out = torch.ones(2, 2) @ torch.ones(2, 2)
    assert out.dtype == torch.float32


def _data(seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    rng = np.random.default_rng(seed)
    y = np.repeat(np.arange(3), 20)
    x = rng.normal(size=(60, 8)) + 3.0 * np.eye(3, 8)[y]
    return torch.tensor(x, dtype=torch.float32), torch.tensor(y)


def test_training_and_scoring_follow_the_device_setting_and_hand_results_back_on_the_cpu(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    x, y = _data()

    def train(device: str | None) -> TextHead:
        torch.manual_seed(0)
        model = TextHead(3, in_dim=8, hidden=16)
        cfg = TrainConfig(epochs=5, seed=0, device=device)
        return train_classifier(model, (x, y), (x[:12], y[:12]), num_classes=3, config=cfg).model  # type: ignore[return-value]

    monkeypatch.setenv(ENV, "auto")
    by_env, explicit = train(None), train("cpu")
    assert model_device(by_env) == torch.device("cpu")
    same = zip(by_env.state_dict().values(), explicit.state_dict().values(), strict=True)
    assert all(torch.equal(a, b) for a, b in same)

    sampler = MCDropout(by_env, iterations=4, device="cpu")
    assert sampler.device == torch.device("cpu")
    probs, _ = sampler(x[:5].numpy())
    assert isinstance(probs, np.ndarray) and probs.shape == (5, 3, 4)
    a = concat_chunks(score_model(by_env, iter_batches(x, 16), iterations=4, heuristic="bald", device="cpu"))
    b = concat_chunks(score_model(by_env, iter_batches(x, 16), iterations=4, heuristic="bald"))
    np.testing.assert_array_equal(a.uncertainty, b.uncertainty)

    monkeypatch.setenv(ENV, "quantum")
    with pytest.raises(DeviceConfigError):
        train(None)
    with pytest.raises(DeviceConfigError):
        MCDropout(by_env, iterations=2)
