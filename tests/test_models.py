"""Architectures: output shapes for each dataset they fit, clear errors for those they don't."""

from __future__ import annotations

import pytest
import torch

from litnets.errors import ConfigError
from litnets.models.cnn import CNN
from litnets.models.linear import LinearRegression
from litnets.models.mlp import MLP
from litnets.models.poly import Polynomial
from litnets.models.softmax import SoftmaxRegression

IRIS, MNIST, CIFAR, SINE, LINEAR = (4,), (1, 28, 28), (3, 32, 32), (1,), (2,)


@pytest.mark.parametrize(
    ("model_class", "kwargs", "input_shape", "num_outputs"),
    [
        (MLP, {"hidden_sizes": [10]}, IRIS, 3),
        (MLP, {"hidden_sizes": [300, 100], "batchnorm": True}, MNIST, 10),
        (MLP, {"activation": "tanh", "dropout": 0.2}, CIFAR, 10),
        (MLP, {"hidden_sizes": [16]}, SINE, 1),
        (SoftmaxRegression, {}, MNIST, 10),
        (SoftmaxRegression, {}, IRIS, 3),
        (LinearRegression, {}, LINEAR, 1),
        (Polynomial, {"degree": 3}, SINE, 1),
        (CNN, {}, CIFAR, 10),
        (CNN, {"activation": "relu"}, MNIST, 10),
    ],
)
def test_output_shape(model_class, kwargs, input_shape, num_outputs) -> None:
    model = model_class(input_shape=input_shape, num_outputs=num_outputs, **kwargs).eval()
    assert model(torch.randn(5, *input_shape)).shape == (5, num_outputs)


def test_seed_002_mlp_layout() -> None:
    model = MLP((1, 28, 28), 10, hidden_sizes=[300, 100], batchnorm=True)
    names = [type(m).__name__ for m in model.net]
    assert names == [
        "Flatten",
        "Linear",
        "BatchNorm1d",
        "ReLU",
        "Linear",
        "BatchNorm1d",
        "ReLU",
        "Linear",
    ]
    assert (
        sum(p.numel() for p in model.parameters())
        == 784 * 300 + 300 + 600 + 300 * 100 + 100 + 200 + 1010
    )


def test_cnn_head_follows_the_image_size() -> None:
    assert CNN(CIFAR, 10).head[1].in_features == 1024  # the tutorial's 64*4*4
    assert CNN(MNIST, 10).head[1].in_features == 576


def test_d2l_initialisation() -> None:
    torch.manual_seed(0)
    model = LinearRegression((500,), 1)
    assert model.linear.weight.std().item() == pytest.approx(0.01, rel=0.15)
    assert torch.all(model.linear.bias == 0)
    softmax = SoftmaxRegression(MNIST, 10)
    assert softmax.net[1].weight.std().item() == pytest.approx(0.01, rel=0.1)


def test_polynomial_reports_its_equation() -> None:
    model = Polynomial((1,), 1, degree=3)
    with torch.no_grad():
        model.linear.weight.copy_(torch.tensor([[0.85, 0.0, -0.09]]))
        model.linear.bias.fill_(0.01)
    learned = model.learned_parameters()
    assert learned["coefficients"] == pytest.approx([0.01, 0.85, 0.0, -0.09])
    assert learned["equation"] == "y = 0.01 + 0.85*x + 0*x^2 - 0.09*x^3"
    x = torch.tensor([[2.0]])
    assert model(x).item() == pytest.approx(0.01 + 0.85 * 2 - 0.09 * 8, rel=1e-5)


def test_linear_reports_w_and_b() -> None:
    model = LinearRegression((2,), 1)
    learned = model.learned_parameters()
    assert len(learned["w"]) == 2 and isinstance(learned["b"], float)


@pytest.mark.parametrize(
    ("model_class", "task", "input_shape", "message"),
    [
        (CNN, "classification", IRIS, "3-D samples"),
        (Polynomial, "classification", MNIST, "regression"),
        (SoftmaxRegression, "regression", SINE, "classification"),
        (LinearRegression, "classification", IRIS, "regression"),
    ],
)
def test_incompatible_pairs_are_config_errors(model_class, task, input_shape, message) -> None:
    with pytest.raises(ConfigError, match=message):
        model_class.check_compatible(task, input_shape)


def test_polynomial_needs_scalar_inputs() -> None:
    with pytest.raises(ConfigError, match="data=sine"):
        Polynomial((2,), 1)


def test_unknown_activation() -> None:
    with pytest.raises(ConfigError, match="relu"):
        MLP(IRIS, 3, activation="swishy")


def test_models_have_no_lightning_inside() -> None:
    for model in (MLP(IRIS, 3), CNN(CIFAR, 10), Polynomial(SINE, 1)):
        assert not any("lightning" in type(m).__module__ for m in model.modules())
