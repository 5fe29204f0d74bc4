"""``import_patches.patch_on_import``: the one import hook behind the metrics and batch-median patches.

Fake modules live in a package written to ``tmp_path``; the hook's registry and ``sys.meta_path``
are swapped for fresh ones per test, so verl's real trainer modules are never touched here.
"""

from __future__ import annotations

import importlib
import importlib.abc
import importlib.machinery
import sys
import types
import uuid
import weakref

import pytest

from semantic_reward import import_patches
from semantic_reward.verl_adapter import batch_terms, metrics
from semantic_reward.import_patches import patch_on_import


@pytest.fixture
def hook(monkeypatch):
    """A fresh registry and meta_path (the real ones come back after the test)."""
    monkeypatch.setattr(import_patches, "_PATCHES", {})
    monkeypatch.setattr(import_patches, "_APPLIED", weakref.WeakKeyDictionary())
    monkeypatch.setattr(import_patches, "_LOADING", set())
    monkeypatch.setattr(import_patches, "_FINDER", None)
    monkeypatch.setattr(sys, "meta_path", [f for f in sys.meta_path if not isinstance(f, import_patches._PatchFinder)])
    return import_patches


@pytest.fixture
def fake(tmp_path, monkeypatch):
    """The name of a not-yet-imported module ``<pkg>.trainer`` with ``greet() -> "hi"``; removed afterwards."""
    package = f"fake_verl_{uuid.uuid4().hex[:8]}"
    (tmp_path / package).mkdir()
    (tmp_path / package / "__init__.py").write_text("")
    (tmp_path / package / "trainer.py").write_text("def greet():\n    return 'hi'\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    yield f"{package}.trainer"
    for name in [n for n in sys.modules if n == package or n.startswith(package + ".")]:
        del sys.modules[name]


def suffix(tag: str, calls: list):
    """A patch that appends ``tag`` to ``greet()``'s answer and records each time it runs."""

    def patch(module: types.ModuleType) -> None:
        calls.append((tag, module.__name__))
        original = module.greet
        module.greet = lambda: original() + tag

    return patch


def test_every_patch_is_applied_once_when_the_module_is_imported(hook, fake):
    calls: list = []
    patch_on_import(fake, suffix("+a", calls), key="a")
    patch_on_import(fake, suffix("+b", calls), key="b")
    assert fake not in sys.modules and calls == []  # nothing happens before the import
    module = importlib.import_module(fake)
    assert module.greet() == "hi+a+b"  # both, in registration order
    assert calls == [("+a", fake), ("+b", fake)]
    assert importlib.import_module(fake) is module and calls == [("+a", fake), ("+b", fake)]  # cached: no rerun
    assert isinstance(module.__spec__.loader, hook._PatchingLoader)


def test_a_module_already_imported_is_patched_at_once(hook, fake):
    module = importlib.import_module(fake)
    calls: list = []
    patch_on_import(fake, suffix("+a", calls), key="a")
    assert calls == [("+a", fake)] and module.greet() == "hi+a"
    patch_on_import(fake, suffix("+b", calls), key="b")  # a later patch of the same module: applied too
    assert module.greet() == "hi+a+b" and len(calls) == 2


def test_the_same_key_twice_is_applied_once(hook, fake):
    calls: list = []
    patch_on_import(fake, suffix("+a", calls), key="a")
    patch_on_import(fake, suffix("+a", calls), key="a")
    patch_on_import(fake, suffix("+other", calls), key="a")  # same key, another function: the first one stays
    module = importlib.import_module(fake)
    patch_on_import(fake, suffix("+a", calls), key="a")  # installed again once the module is in
    assert module.greet() == "hi+a" and calls == [("+a", fake)]
    importlib.reload(module)  # its code ran again, so the patch is due again, once
    assert module.greet() == "hi+a" and calls == [("+a", fake), ("+a", fake)]


def test_a_patch_that_raises_fails_the_import_and_is_retried(hook, fake):
    """metrics' contract: on another verl the trainer's import itself fails with MetricsHookError."""
    calls: list = []
    attempts: list = []

    def strict(module):
        attempts.append(module.__name__)
        if len(attempts) == 1:
            raise metrics.MetricsHookError("written for verl 0.9.1 and verl 0.10.0 is installed")
        suffix("+a", calls)(module)

    patch_on_import(fake, strict, key="metrics")
    with pytest.raises(metrics.MetricsHookError, match="verl 0.10.0 is installed"):
        importlib.import_module(fake)
    assert fake not in sys.modules and not hook._LOADING  # a failed import leaves no half-patched module
    module = importlib.import_module(fake)  # the next import tries again
    assert module.greet() == "hi+a" and attempts == [fake, fake] and calls == [("+a", fake)]


def test_a_patch_that_raises_on_an_imported_module_reaches_the_caller(hook, fake):
    """batch_terms' contract: a module that is not verl's V1 trainer is a RuntimeError from install()."""
    importlib.import_module(fake)
    with pytest.raises(RuntimeError, match="has no PPOTrainer._compute_advantage"):
        patch_on_import(fake, batch_terms.patch_v1_trainer, key="batch_terms")
    calls: list = []
    patch_on_import(fake, suffix("+a", calls), key="other")  # other keys are unaffected
    assert calls == [("+a", fake)]
    with pytest.raises(RuntimeError, match="has no PPOTrainer._compute_advantage"):  # not marked done: tried again
        patch_on_import(fake, batch_terms.patch_v1_trainer, key="batch_terms")


def test_batch_terms_install_refuses_a_module_that_is_not_the_v1_trainer(hook, monkeypatch):
    monkeypatch.setitem(sys.modules, batch_terms.V1_MODULE, types.ModuleType(batch_terms.V1_MODULE))
    with pytest.raises(RuntimeError, match=r"has no PPOTrainer\._compute_advantage: not verl 0\.9\.1's V1 trainer"):
        batch_terms.install()


def test_metrics_install_registers_both_trainers_then_raises_on_another_verl(hook, monkeypatch):
    import verl

    monkeypatch.setattr(verl, "__version__", "0.10.0")
    legacy = types.ModuleType(metrics._LEGACY)
    legacy.compute_data_metrics = lambda batch, use_critic=True: {}
    monkeypatch.setitem(sys.modules, metrics._LEGACY, legacy)
    monkeypatch.delitem(sys.modules, metrics._V1, raising=False)
    monkeypatch.delenv(metrics.SWITCH, raising=False)
    with pytest.raises(metrics.MetricsHookError, match=r"verl 0\.10\.0 is installed.*SEMANTIC_REWARD_TRAIN_METRICS=0"):
        metrics.install()
    assert set(hook._PATCHES) == {metrics._LEGACY, metrics._V1}  # the V1 trainer is still patched on import
    assert not hasattr(legacy.compute_data_metrics, "_semantic_reward_metrics")

    monkeypatch.setattr(import_patches, "_PATCHES", {})
    monkeypatch.setenv(metrics.SWITCH, "0")
    assert metrics.install() is False and hook._PATCHES == {}


class _MemoryFinder(importlib.abc.MetaPathFinder, importlib.abc.Loader):
    """Serves one module from a string: a module no file-system finder can find."""

    def __init__(self, name: str):
        self.name = name

    def find_spec(self, fullname, path, target=None):
        return importlib.machinery.ModuleSpec(fullname, self) if fullname == self.name else None

    def exec_module(self, module):
        exec("def greet():\n    return 'from memory'\n", module.__dict__)


def test_the_hook_wraps_what_later_finders_return(hook, monkeypatch):
    """Delegating to the finders after it keeps other import hooks (editable installs...) working."""
    name = f"in_memory_{uuid.uuid4().hex[:8]}"
    monkeypatch.setattr(sys, "meta_path", [*sys.meta_path, _MemoryFinder(name)])
    calls: list = []
    patch_on_import(name, suffix("+a", calls), key="a")
    try:
        assert importlib.import_module(name).greet() == "from memory+a" and calls == [("+a", name)]
    finally:
        sys.modules.pop(name, None)
