"""CrypTen 0.4.1 on modern torch through mpc.runtime.compat, on real CrypTen tensors."""

from __future__ import annotations

import io
import pickle
import sys

import mpc.runtime
from mpc.runtime import compat

import pytest
import torch

TOL = 1e-3  # 16 fractional bits: one ulp is 1.5e-5; series approximations cost more
APPROX_TOL = 2e-2  # exp/log/sigmoid/reciprocal use iterative approximations


def test_importing_the_runtime_makes_crypten_importable() -> None:
    import crypten

    assert sys.modules["torch.onnx._internal.registration"].__name__.endswith(
        "torchscript_exporter.registration"
    )
    assert hasattr(crypten, "cryptensor")


def test_install_is_idempotent() -> None:
    from crypten.nn import onnx_converter

    before = (onnx_converter._export_pytorch_model, onnx_converter.ONNX_TO_CRYPTEN["Identity"])
    compat.install()
    mpc.runtime.compat.install()
    assert (onnx_converter._export_pytorch_model, onnx_converter.ONNX_TO_CRYPTEN["Identity"]) == before


@pytest.fixture()
def xy(crypten_local):  # type: ignore[no-untyped-def]
    gen = torch.Generator().manual_seed(7)
    x = torch.rand(64, generator=gen) * 20 - 10
    y = torch.rand(64, generator=gen) * 20 - 10
    return x, y, crypten_local.cryptensor(x), crypten_local.cryptensor(y)


def _close(secure, plain: torch.Tensor, tol: float) -> None:  # type: ignore[no-untyped-def]
    got = secure.get_plain_text()
    assert got.shape == plain.shape
    assert torch.allclose(got, plain.to(got.dtype), atol=tol, rtol=tol), (got - plain).abs().max()


def test_arithmetic(xy) -> None:  # type: ignore[no-untyped-def]
    x, y, ex, ey = xy
    _close(ex + ey, x + y, TOL)
    _close(ex - ey, x - y, TOL)
    _close(ex * ey, x * y, 1e-2)
    _close(ex * 3.5, x * 3.5, TOL)
    _close(ex.sum(), x.sum(), 1e-2)


def test_comparisons(xy) -> None:  # type: ignore[no-untyped-def]
    x, y, ex, ey = xy
    _close(ex < ey, (x < y).float(), 0)
    _close(ex >= ey, (x >= y).float(), 0)
    _close(ex.relu(), x.relu(), TOL)
    _close(ex.max(), x.max(), TOL)


def test_division(xy) -> None:  # type: ignore[no-untyped-def]
    x, y, ex, ey = xy
    denominator = y.abs() + 1
    _close(ex / (ey.abs() + 1), x / denominator, APPROX_TOL)
    _close(ex / 4, x / 4, TOL)


def test_exp_log_sigmoid(crypten_local) -> None:  # type: ignore[no-untyped-def]
    x = torch.linspace(-4, 4, 33)
    ex = crypten_local.cryptensor(x)
    _close(ex.exp(), x.exp(), APPROX_TOL * 3)
    _close(ex.sigmoid(), x.sigmoid(), APPROX_TOL)
    positive = torch.linspace(0.5, 50, 33)
    _close(crypten_local.cryptensor(positive).log(), positive.log(), APPROX_TOL)


def test_matmul(crypten_local) -> None:  # type: ignore[no-untyped-def]
    gen = torch.Generator().manual_seed(3)
    a, b = torch.randn(16, 8, generator=gen), torch.randn(8, 4, generator=gen)
    _close(crypten_local.cryptensor(a).matmul(crypten_local.cryptensor(b)), a @ b, 1e-2)


def _torch_model() -> torch.nn.Module:
    torch.manual_seed(0)
    model = torch.nn.Sequential(
        torch.nn.Linear(6, 16),
        torch.nn.BatchNorm1d(16),  # exports ONNX Identity nodes in eval mode
        torch.nn.ReLU(),
        torch.nn.Dropout(0.2),
        torch.nn.Linear(16, 3),
        torch.nn.Softmax(dim=1),  # exercises CrypTen's symbolic override
    )
    return model.eval()


def test_from_pytorch_model_on_encrypted_input(crypten_local) -> None:  # type: ignore[no-untyped-def]
    model = _torch_model()
    secure = crypten_local.nn.from_pytorch(model, torch.randn(2, 6))
    secure.encrypt()
    x = torch.randn(10, 6)
    with torch.no_grad():
        want = model(x)
    _close(secure(crypten_local.cryptensor(x)), want, APPROX_TOL)


def test_save_load_shares_with_weights_only_unpickler(crypten_local) -> None:  # type: ignore[no-untyped-def]
    x = torch.randn(5)
    buf = io.BytesIO()
    crypten_local.save(crypten_local.cryptensor(x), buf)
    buf.seek(0)
    _close(crypten_local.load(buf), x, TOL)

    model = crypten_local.nn.Sequential(crypten_local.nn.Linear(4, 2))
    model.encrypt()
    buf = io.BytesIO()
    crypten_local.save(model, buf)
    buf.seek(0)
    loaded = crypten_local.load(buf)
    inp = crypten_local.cryptensor(torch.randn(3, 4))
    _close(loaded(inp), model(inp).get_plain_text(), TOL)


def test_a_trained_modules_state_dict_loads_with_the_weights_only_unpickler(crypten_local) -> None:  # type: ignore[no-untyped-def]
    """CrypTen's test_nn::test_state_dict: after a backward pass a module's tensors
    carry their autograd function (AutogradClone, ...), which the allow-list missed."""
    model = crypten_local.nn.Sequential(crypten_local.nn.Linear(3, 2))
    model.encrypt()
    model.train()
    model(crypten_local.cryptensor(torch.randn(4, 3), requires_grad=True)).sum().backward()
    buf = io.BytesIO()
    torch.save(model.state_dict(), buf)
    buf.seek(0)
    state = torch.load(buf)  # weights only
    again = crypten_local.nn.Sequential(crypten_local.nn.Linear(3, 2))
    again.encrypt()
    again.load_state_dict(state)
    inp = crypten_local.cryptensor(torch.randn(2, 3))
    _close(again(inp), model(inp).get_plain_text(), TOL)


def test_load_still_refuses_arbitrary_objects(crypten_local) -> None:  # type: ignore[no-untyped-def]
    """The allow-list covers CrypTen's classes only: a pickled torch model (which
    could be any code) needs the explicit, trusted path."""
    secure = crypten_local.nn.from_pytorch(_torch_model(), torch.randn(2, 6))
    secure.encrypt()
    buf = io.BytesIO()
    crypten_local.save(secure, buf)
    buf.seek(0)
    with pytest.raises(pickle.UnpicklingError):
        crypten_local.load(buf)
    buf.seek(0)
    x = torch.randn(4, 6)
    with torch.no_grad():
        want = _torch_model()(x)
    _close(compat.load_trusted(buf)(crypten_local.cryptensor(x)), want, APPROX_TOL)
