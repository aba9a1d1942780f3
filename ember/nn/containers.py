"""Containers: Sequential, ModuleList and ModuleDict.

Example:
    >>> import ember
    >>> from ember import nn
    >>> model = nn.Sequential(nn.Linear(2, 4), nn.ReLU())
    >>> model.append(nn.Linear(4, 1))
    Sequential(
      (0): Linear(in_features=2, out_features=4, bias=True)
      (1): ReLU()
      (2): Linear(in_features=4, out_features=1, bias=True)
    )
    >>> model(ember.zeros(3, 2)).shape, len(model), type(model[1:]).__name__
    ((3, 1), 3, 'Sequential')
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping, Sequence
from typing import Any

from ember.nn.module import Module
from ember.nn.registry import REQUIRED

__all__ = ["Sequential", "ModuleList", "ModuleDict"]


def _index(container: Module, idx: int) -> int:
    n = len(container._modules)
    if not isinstance(idx, int) or isinstance(idx, bool):
        raise TypeError(f"{type(container).__name__} indices must be integers or slices, not "
                        f"{type(idx).__name__}")
    if not -n <= idx < n:
        raise IndexError(f"index {idx} is out of range for a {type(container).__name__} of "
                         f"{n} modules")
    return idx % n


class Sequential(Module):
    """Modules called one after the other, named ``"0"``, ``"1"``… (or by the keys of a dict);
    given as arguments or as one list.

    Indexing gives a module, slicing a new Sequential holding the same modules.

    Example:
        >>> from ember import nn
        >>> nn.Sequential({"fc": nn.Linear(2, 2), "act": nn.Tanh()})
        Sequential(
          (fc): Linear(in_features=2, out_features=2, bias=True)
          (act): Tanh()
        )
    """

    def __init__(self, *modules: Module | Mapping[str, Module] | Sequence[Module]) -> None:
        super().__init__()
        if len(modules) == 1 and isinstance(modules[0], (list, tuple)):
            modules = tuple(modules[0])  # Sequential([a, b]) as Sequential(a, b)
        if len(modules) == 1 and isinstance(modules[0], Mapping):
            for name, m in modules[0].items():
                self.add_module(name, m)
        else:
            for i, module in enumerate(modules):
                if not isinstance(module, Module):
                    raise TypeError(f"Sequential takes Modules; argument {i} is a "
                                    f"{type(module).__name__}")
                self.add_module(str(i), module)

    def forward(self, x: Any) -> Any:
        for m in self._modules.values():
            x = m(x)  # type: ignore[misc]
        return x

    def __getitem__(self, idx: int | slice) -> Any:
        items = list(self._modules.items())
        if isinstance(idx, slice):
            return Sequential(dict(items[idx]))  # type: ignore[arg-type]
        return items[_index(self, idx)][1]

    def __setitem__(self, idx: int, module: Module) -> None:
        name = list(self._modules)[_index(self, idx)]
        self.add_module(name, module)

    def __len__(self) -> int:
        return len(self._modules)

    def __iter__(self) -> Iterator[Module]:
        return iter(m for m in self._modules.values() if m is not None)

    def append(self, module: Module) -> Sequential:
        """Add ``module`` at the end (named by its position); returns ``self``."""
        self.add_module(str(len(self)), module)
        return self

    def extend(self, modules: Iterable[Module]) -> Sequential:
        """Append each of ``modules``; returns ``self``."""
        for m in modules:
            self.append(m)
        return self

    # as an entry of a config: {"type": "sequential", "layers": [...]}
    config_name = "sequential"
    config_fields = {"layers": REQUIRED}

    @classmethod
    def build_config(cls, f: dict[str, Any], shape: Any, where: str) -> Any:
        from ember.nn.config import build_list

        return build_list(f["layers"], shape, where + ".")

    def config(self) -> list[dict[str, Any]]:
        """The JSON-serialisable list of layer entries that ``nn.from_config`` rebuilds.

        Example:
            >>> from ember import nn
            >>> nn.Sequential(nn.Linear(3, 2), nn.ReLU()).config()
            [{'type': 'dense', 'units': 2, 'in_features': 3}, {'type': 'relu'}]
        """
        from ember.nn.config import to_config

        return to_config(self)


class ModuleList(Module):
    """A list of modules, registered as ``"0"``, ``"1"``… (no forward of its own).

    Example:
        >>> from ember import nn
        >>> blocks = nn.ModuleList([nn.Linear(2, 2) for _ in range(3)])
        >>> len(blocks), len(list(blocks.parameters()))
        (3, 6)
    """

    def __init__(self, modules: Iterable[Module] = ()) -> None:
        super().__init__()
        self.extend(modules)

    def __getitem__(self, idx: int | slice) -> Any:
        mods = list(self._modules.values())
        if isinstance(idx, slice):
            return ModuleList(mods[idx])  # type: ignore[arg-type]
        return mods[_index(self, idx)]

    def __setitem__(self, idx: int, module: Module) -> None:
        self.add_module(str(_index(self, idx)), module)

    def __len__(self) -> int:
        return len(self._modules)

    def __iter__(self) -> Iterator[Module]:
        return iter(m for m in self._modules.values() if m is not None)

    def append(self, module: Module) -> ModuleList:
        """Add ``module`` at the end; returns ``self``."""
        self.add_module(str(len(self)), module)
        return self

    def extend(self, modules: Iterable[Module]) -> ModuleList:
        """Append each of ``modules``; returns ``self``."""
        for m in modules:
            self.append(m)
        return self

    def insert(self, index: int, module: Module) -> None:
        """Insert ``module`` before ``index`` (later modules are renamed by position)."""
        mods = [m for m in self._modules.values() if m is not None]
        mods.insert(index, module)
        self._modules.clear()
        for m in mods:  # renumbered children take their new names (and lazy keys) from here
            if m._parent is not None and m._parent() is self:
                object.__setattr__(m, "_parent", None)
        for i, m in enumerate(mods):
            self.add_module(str(i), m)

    def forward(self, *args: Any, **kwargs: Any) -> Any:
        raise NotImplementedError("ModuleList has no forward: iterate over it in your own "
                                  "module's forward, or use nn.Sequential")


class ModuleDict(Module):
    """A dict of modules under string keys, in insertion order (no forward of its own).

    Example:
        >>> from ember import nn
        >>> heads = nn.ModuleDict({"a": nn.Linear(2, 1), "b": nn.Linear(2, 3)})
        >>> list(heads.keys()), heads["b"].out_features
        (['a', 'b'], 3)
    """

    def __init__(self, modules: Mapping[str, Module] | None = None) -> None:
        super().__init__()
        if modules is not None:
            self.update(modules)

    def __getitem__(self, key: str) -> Module:
        if key not in self._modules:
            raise KeyError(f"ModuleDict has no key {key!r}; keys: {list(self._modules)}")
        return self._modules[key]  # type: ignore[return-value]

    def __setitem__(self, key: str, module: Module) -> None:
        self.add_module(key, module)

    def __delitem__(self, key: str) -> None:
        self._unregister(key)

    def __contains__(self, key: object) -> bool:
        return key in self._modules

    def __len__(self) -> int:
        return len(self._modules)

    def __iter__(self) -> Iterator[str]:
        return iter(self._modules)

    def keys(self) -> list[str]:
        return list(self._modules)

    def values(self) -> list[Module]:
        return [m for m in self._modules.values() if m is not None]

    def items(self) -> list[tuple[str, Module]]:
        return [(k, m) for k, m in self._modules.items() if m is not None]

    def update(self, modules: Mapping[str, Module]) -> None:
        """Add or replace the modules of a mapping."""
        for k, m in modules.items():
            self.add_module(k, m)

    def forward(self, *args: Any, **kwargs: Any) -> Any:
        raise NotImplementedError("ModuleDict has no forward: call its modules in your own "
                                  "module's forward")
