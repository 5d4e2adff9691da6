"""Makes CrypTen 0.4.1 (the last release, built for torch 1.x) work on torch 2.13+.

Nothing here edits CrypTen's files: each fix rebinds a name at import time, is
idempotent, and is covered by tests/mpc/test_compat.py. `import mpc.runtime` applies them all,
so `import mpc.runtime, crypten` is the supported way to load CrypTen in this project.

What torch changed and how each fix answers it:
- `torch.onnx._internal.registration` moved to
  `torch.onnx._internal.torchscript_exporter.registration`; CrypTen imports the old
  path at import time, so the old name is aliased before CrypTen loads.
- `torch.onnx.export` defaults to the dynamo exporter, which needs onnxscript and
  ignores CrypTen's TorchScript symbolic overrides; `crypten.nn.from_pytorch` is
  pointed at an export with `dynamo=False`.
- The TorchScript exporter emits ONNX `Identity` nodes (e.g. for eval-mode
  dropout and batch norm) for which CrypTen has no module; one is registered.
- `torch.load` defaults to `weights_only=True`, which refuses the CrypTen classes
  `crypten.save` writes; CrypTen's own share, encoder and module classes (and
  frozenset, in its tuple cache's keys) are allow-listed, so `crypten.load` and
  the providers' `load_cache` work without falling back to unsafe pickle.
  `crypten.load_from_party(..., model_class=C)` declares the source party's own
  file a module of class C: CrypTen allow-lists C for the other parties'
  unpickler, and the source now reads its file whole (torch's weights-only
  unpickler knows neither C nor the torch modules inside it).

And one for speed: CrypTen checks `cfg.debug.validation_mode` on every attribute
access of every encrypted tensor (its validation hook around
`CrypTensor.__getattribute__`), an OmegaConf lookup of ~20 us, thousands of times
per training batch. The hook is rebound to read the same setting from its
OmegaConf node (`flag`), a few times faster; turning validation on still works.
"""

from __future__ import annotations

import functools
import importlib
import io
import sys
from typing import Any

import torch

_OLD_REGISTRATION = "torch.onnx._internal.registration"
_NEW_REGISTRATION = "torch.onnx._internal.torchscript_exporter.registration"
_installed = False
Identity: type  # set by install(); CrypTen's module base class needs the alias first


def _alias_onnx_registration() -> None:
    if _OLD_REGISTRATION in sys.modules:
        return
    try:
        importlib.import_module(_OLD_REGISTRATION)
    except ModuleNotFoundError:
        sys.modules[_OLD_REGISTRATION] = importlib.import_module(_NEW_REGISTRATION)


def export_onnx(f: io.BytesIO, pytorch_model: torch.nn.Module, dummy_input: Any) -> io.BytesIO:
    """A PyTorch module as ONNX, as `crypten.nn.from_pytorch` exports it: CrypTen's
    export arguments, with the TorchScript exporter CrypTen was written for (also
    how a party exports a network to register as a model asset)."""
    from crypten.nn import onnx_converter

    torch.onnx.export(
        pytorch_model,
        dummy_input,
        f,  # type: ignore[arg-type]  # a file object works: torch's stub names paths only
        do_constant_folding=False,
        export_params=True,
        input_names=["input"],
        output_names=["output"],
        operator_export_type=torch.onnx.OperatorExportTypes.ONNX,
        opset_version=onnx_converter._OPSET_VERSION,
        dynamo=False,
    )
    return f


def _identity_module() -> type:
    """An ONNX Identity module, defined once CrypTen can be imported; module-level
    (see `Identity` below) so models holding it can be saved and loaded."""
    from crypten.nn import module

    class Identity(module.Module):
        """ONNX Identity: passes its single input through."""

        def forward(self, x: Any) -> Any:
            return x

        @staticmethod
        def from_onnx(attributes: dict | None = None) -> Identity:
            return Identity()

    Identity.__module__ = __name__
    Identity.__qualname__ = "Identity"
    return Identity


def _crypten_classes() -> list[type]:
    """Classes `crypten.save` pickles: shares, encoders, ptypes, nn modules and the
    autograd functions their tensors carry."""
    import crypten.encoder
    import crypten.gradients
    import crypten.nn.module as nn_module
    from crypten.mpc.mpc import MPCTensor
    from crypten.mpc.primitives.arithmetic import ArithmeticSharedTensor
    from crypten.mpc.primitives.binary import BinarySharedTensor

    modules = [obj for obj in vars(nn_module).values() if isinstance(obj, type) and issubclass(obj, nn_module.Module)]
    # a module's state holds its tensors' autograd functions (AutogradClone, ...)
    functions = [obj for obj in vars(crypten.gradients).values()
                 if isinstance(obj, type) and issubclass(obj, crypten.gradients.AutogradFunction)]
    return [
        frozenset,  # keys of CrypTen's tuple cache (provider.save_cache / load_cache)
        MPCTensor,
        ArithmeticSharedTensor,
        BinarySharedTensor,
        crypten.encoder.FixedPointEncoder,
        crypten.gradients.AutogradContext,
        crypten.gradients.BaseAutogradContext,
        *functions,
        importlib.import_module("crypten.mpc.ptype").ptype,  # the package rebinds the name to the enum
        *modules,
        Identity,
    ]


_load_whole = functools.partial(torch.load, weights_only=False)
"""torch.load of any pickled object: only for files from a trusted source."""


def _load_from_party(f: Any = None, *args: Any, model_class: Any = None, load_closure: Any = torch.load,
                     **kwargs: Any) -> Any:
    if model_class is not None and load_closure is torch.load:
        load_closure = _load_whole  # the source's own file
    return _crypten_load_from_party(f, *args, model_class=model_class, load_closure=load_closure, **kwargs)


_crypten_load_from_party: Any = None


def flag(section: str, name: str) -> bool:
    """cfg.<section>.<name>, read from its OmegaConf node: CrypTen's own lookup
    (its config wrapper, then OmegaConf's resolution) takes ~20 us."""
    from crypten.config import cfg

    try:
        return bool(object.__getattribute__(cfg, "config")._get_node(section)._get_node(name)._value())
    except AttributeError:  # another OmegaConf: the documented way
        return bool(getattr(getattr(cfg, section), name))


def _fast_validation_hook() -> None:
    from crypten.cryptensor import CrypTensor
    from crypten.debug import validate_correctness

    hooked = CrypTensor.__getattribute__
    lookup = getattr(hooked, "__wrapped__", None)
    if lookup is None:  # not CrypTen 0.4.1's hook: leave it
        return

    def __getattribute__(self: Any, name: str) -> Any:
        function = lookup(self, name)
        if not flag("debug", "validation_mode"):
            return function
        return validate_correctness(self, function, name)

    __getattribute__.__wrapped__ = lookup  # type: ignore[attr-defined]
    CrypTensor.__getattribute__ = __getattribute__


def install() -> None:
    """Applies every fix once; safe to call again."""
    global _installed
    if _installed:
        return
    _alias_onnx_registration()
    import crypten  # noqa: F401  (must come after the alias)
    from crypten.nn import onnx_converter

    onnx_converter._export_pytorch_model = export_onnx
    global Identity
    Identity = _identity_module()
    onnx_converter.ONNX_TO_CRYPTEN.setdefault("Identity", Identity)
    torch.serialization.add_safe_globals(_crypten_classes())  # type: ignore[arg-type]  # classes are callables
    global _crypten_load_from_party
    _crypten_load_from_party = crypten.load_from_party
    crypten.load_from_party = _load_from_party
    _fast_validation_hook()
    _installed = True


def load_trusted(f: Any) -> Any:
    """`crypten.load` for files from a trusted source that hold arbitrary PyTorch
    objects (e.g. models from `crypten.nn.from_pytorch`, which keep the original
    torch module). Anything else loads with plain `crypten.load` and torch's
    weights-only unpickler."""
    import crypten

    return crypten.load(f, load_closure=_load_whole)
