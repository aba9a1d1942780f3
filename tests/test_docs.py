"""Every public object of ember has a short docstring with an example that runs.

The examples themselves run as doctests (``--doctest-modules``); this meta-test makes sure that
there is one for every public class and function of each namespace, that doctest actually finds
it (a docstring set on an object that no module holds would never run), and that the public
methods of the central classes are documented.
"""

from __future__ import annotations

import doctest
import functools
import importlib
import importlib.util
import inspect
import pkgutil
import types
from typing import Any

import pytest

import ember

# The namespaces a user reaches for; the last three are checked once they exist.
NAMESPACES = [
    "ember",
    "ember.nn",
    "ember.nn.init",
    "ember.nn.functional",
    "ember.optim",
    "ember.optim.schedules",
    "ember.optim.rules",
    "ember.data",
    "ember.metrics",
    "ember.callbacks",
    "ember.random",
    "ember.backend",
    "ember.jit",
    "ember.models",
]
OPTIONAL = ["ember.plot", "ember.distributed", "ember.cli"]


def _exists(name: str) -> bool:
    """A module file or a package with ``__init__.py`` (not a folder that is being written)."""
    spec = importlib.util.find_spec(name)
    return spec is not None and spec.origin is not None


CHECKED = NAMESPACES + [name for name in OPTIONAL if _exists(name)]


def public_objects(module: types.ModuleType) -> dict[str, Any]:
    """The classes and functions a module offers: those in ``__all__``, else its own public
    names (not the ones it imports)."""
    names = getattr(module, "__all__", None)
    if names is None:
        names = [n for n, v in vars(module).items() if not n.startswith("_")
                 and getattr(v, "__module__", None) == module.__name__]
    out = {}
    for name in names:
        obj = getattr(module, name)
        if inspect.isclass(obj) or inspect.isroutine(obj):
            out[name] = obj
    return out


def own_doc(obj: Any) -> str:
    """The object's own docstring (a class does not borrow its base class's)."""
    doc = vars(obj).get("__doc__") if inspect.isclass(obj) else getattr(obj, "__doc__", None)
    return inspect.cleandoc(doc) if isinstance(doc, str) else ""


@functools.cache
def doctested_docstrings() -> frozenset[str]:
    """The docstrings in which doctest finds examples, over every module of ember (what
    ``--doctest-modules`` collects)."""
    finder = doctest.DocTestFinder()
    found = set()
    for info in pkgutil.walk_packages(ember.__path__, "ember.", onerror=lambda name: None):
        if info.name == "ember.__main__":
            continue
        try:
            module = importlib.import_module(info.name)
        except Exception:  # noqa: BLE001 - its own doctest collection reports the error
            continue
        for test in finder.find(module):
            if test.examples and test.docstring:
                found.add(inspect.cleandoc(test.docstring))
    for test in finder.find(ember):
        if test.examples and test.docstring:
            found.add(inspect.cleandoc(test.docstring))
    return frozenset(found)


def missing_examples(module: types.ModuleType, run: frozenset[str] | None = None) -> list[str]:
    """Names of the module's public objects whose docstring has no ``>>>`` example, or whose
    example doctest never runs (when ``run``, the docstrings doctest finds, is given)."""
    missing = []
    for name, obj in public_objects(module).items():
        doc = own_doc(obj)
        if ">>>" not in doc:
            missing.append(name)
        elif run is not None and doc not in run:
            missing.append(f"{name} (its example is never collected by doctest)")
    return missing


@pytest.mark.parametrize("namespace", CHECKED)
def test_every_public_object_has_an_example(namespace):
    module = importlib.import_module(namespace)
    if namespace in NAMESPACES:
        assert public_objects(module), f"{namespace} offers no classes or functions?"
    missing = missing_examples(module, doctested_docstrings())
    assert not missing, (f"{namespace}: {len(missing)} public object(s) without a docstring "
                         f"example (>>>): " + ", ".join(f"{namespace}.{n}" for n in missing))


def test_the_meta_test_can_fail():
    fake = types.ModuleType("fake")
    exec(  # noqa: S102 - a throwaway module with one documented and two undocumented objects
        "def shown():\n"
        "    '''Shown.\n\n    Example:\n        >>> 1 + 1\n        2\n    '''\n"
        "def bare():\n"
        "    '''No example.'''\n"
        "class Base:\n"
        "    '''Base.\n\n    >>> Base()  # doctest: +ELLIPSIS\n    <...>\n    '''\n"
        "class Child(Base):\n"
        "    pass\n"
        "__all__ = ['shown', 'bare', 'Base', 'Child']\n",
        fake.__dict__,
    )
    assert missing_examples(fake) == ["bare", "Child"]  # Child does not borrow Base's example
    assert missing_examples(fake, frozenset()) == [
        "shown (its example is never collected by doctest)", "bare",
        "Base (its example is never collected by doctest)", "Child",
    ]
    assert sorted(public_objects(fake)) == ["Base", "Child", "bare", "shown"]


def test_every_registered_op_shows_its_own_example():
    from ember.ops import REGISTRY

    docs = {name: own_doc(fn) for name, fn in REGISTRY.items()}
    assert not [n for n, d in docs.items() if ">>>" not in d]
    # ops made by one factory (the comparisons) each show their own name
    for name in ("eq", "ne", "lt", "le", "gt", "ge"):
        assert f"ember.{name}(" in docs[name], name


def _public_methods(cls: type) -> dict[str, Any]:
    """Non-dunder methods (plain, static, class) defined on ``cls`` or its bases, including
    those attached by ``ember.ops.register``; properties are not methods."""
    out = {}
    for name in dir(cls):
        if name.startswith("_"):
            continue
        static = inspect.getattr_static(cls, name)
        if isinstance(static, (staticmethod, classmethod)) or inspect.isfunction(static):
            out[name] = getattr(cls, name)
    return out


CENTRAL = {
    "Tensor": lambda: ember.Tensor,
    "nn.Module": lambda: ember.nn.Module,
    "optim.Optimizer": lambda: ember.optim.Optimizer,
    "Trainer": lambda: ember.Trainer,
}


@pytest.mark.parametrize("name", list(CENTRAL))
def test_central_classes_document_their_methods(name):
    cls = CENTRAL[name]()
    methods = _public_methods(cls)
    assert len(methods) >= 4, sorted(methods)
    bare = sorted(m for m, f in methods.items() if not (inspect.getdoc(f) or "").strip())
    assert not bare, f"{name}: public methods without a docstring: {', '.join(bare)}"


def test_tensor_methods_from_ops_share_the_op_docstring():
    from ember.ops import METHODS, REGISTRY

    attached = {attr: op for attr, op in METHODS.items() if not attr.startswith("__")}
    assert {"sum", "relu", "reshape", "eq"} <= set(attached)
    for attr, op in attached.items():
        assert getattr(ember.Tensor, attr).__doc__ == REGISTRY[op].__doc__, attr
