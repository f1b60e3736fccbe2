"""A processor whose torchvision import is answered by a PIL twin gets the same code: each function the twin lends is,
docstrings aside, the torchvision module's function statement for statement (read from the installed transformers'
source, without importing torchvision)."""
import ast
import importlib.util
from pathlib import Path

import pytest

from mmhallu_eval.backends.hf_processor import TORCHVISION_TWINS


def _function(module: str, name: str) -> str:
    """The function's source from the module's file, found through its package (the module itself may be a stand-in
    in sys.modules)."""
    package, _, leaf = module.rpartition(".")
    spec = importlib.util.find_spec(package)
    assert spec is not None and spec.submodule_search_locations, f"{package} is not in this transformers"
    tree = ast.parse((Path(list(spec.submodule_search_locations)[0]) / f"{leaf}.py").read_text(encoding="utf-8"))
    found = next(n for n in tree.body if isinstance(n, ast.FunctionDef) and n.name == name)
    found.body = [b for b in found.body if not (isinstance(b, ast.Expr) and isinstance(b.value, ast.Constant) and isinstance(b.value.value, str))]
    return ast.unparse(found)


@pytest.mark.parametrize("processor", sorted(TORCHVISION_TWINS))
def test_twin_functions_are_the_torchvision_modules_own_code(processor):
    _, needed, twin, functions = TORCHVISION_TWINS[processor]
    for name in functions:
        assert _function(twin, name) == _function(needed, name), f"{twin}.{name} differs from {needed}.{name}: the twin cannot stand in"


def test_a_lazy_import_failure_names_the_package_behind_it():
    """transformers' lazy import raises "Could not import module 'Gemma4Processor'" from the error that names the
    missing package (Gemma 4 before transformers 5.21 without torchvision): the message names both."""
    from mmhallu_eval.backends.hf_processor import _missing_package_message

    def lazy_failure(missing: str) -> ImportError:
        try:
            try:
                raise ModuleNotFoundError(f"No module named '{missing}'", name=missing)
            except ModuleNotFoundError as inner:
                raise ModuleNotFoundError("Could not import module 'Gemma4Processor'. Are this object's requirements defined correctly?") from inner
        except ImportError as exc:
            return exc

    line = _missing_package_message("m", lazy_failure("torchvision"))
    assert line.startswith("the processor of m (Gemma4Processor) needs torchvision, which is not installed") and "5.21" in line
    other = _missing_package_message("m", lazy_failure("einops"))
    assert "needs a package that is not installed" in other and "No module named 'einops'" in other and "module einops" in other
