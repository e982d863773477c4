"""``record``: the dataclass decorator of tokecon's value types.

A ``@record`` class is a standard :func:`dataclasses.dataclass` (``fields``, ``replace`` and
``asdict`` work; frozen unless ``frozen=False``) whose ``__init__``, ``__repr__``, ``__eq__``,
``__hash__`` and frozen ``__setattr__`` are shared functions rather than code generated for each
class. Python 3.11 compiles every generated method with ``exec`` (about 0.2 ms each); tokecon
defines some 60 value types, and generating their methods was a tenth of every command's start
(bench/bench.py). The shared methods behave as the generated ones do: ``__init__`` takes the
fields in order, by position or keyword, fills defaults and ``default_factory`` values and calls
``__post_init__``; the repr reads ``Name(a=1, b=2)``; equality compares the compared fields of two
objects of one class; a frozen record hashes them and refuses assignment, a mutable one is
unhashable. A method the class defines itself is kept. Fields with ``init=False``, ``kw_only``
and ``InitVar`` are refused at class creation (none is used). ``__init__`` writes the fields into the
instance dict directly and looks up ``__post_init__`` once, when the class is decorated (as
:func:`dataclasses.dataclass` does).
"""

from __future__ import annotations

import dataclasses
from typing import Any, Callable, TypeVar

T = TypeVar("T")


def _repr(self: Any) -> str:
    return f"{type(self).__qualname__}({', '.join(f'{n}={getattr(self, n)!r}' for n in self.__record_repr__)})"


def _key(self: Any) -> tuple:
    return tuple(getattr(self, n) for n in self.__record_compare__)


def _eq(self: Any, other: object) -> Any:
    if other.__class__ is not self.__class__:
        return NotImplemented
    return _key(self) == _key(other)


def _hash(self: Any) -> int:
    return hash(_key(self))


def _init(self: Any, *args: Any, **kwargs: Any) -> None:
    cls = type(self)
    names, known, defaults, factories, post_init = cls.__record_init__
    given = len(args)
    if given > len(names):
        raise TypeError(f"{cls.__qualname__}() takes {len(names)} arguments but {given} were given")
    if kwargs:
        if not known.issuperset(kwargs):
            unknown = sorted(set(kwargs) - known)
            raise TypeError(f"{cls.__qualname__}() got an unexpected keyword argument '{unknown[0]}'")
        for name in names[:given]:
            if name in kwargs:
                raise TypeError(f"{cls.__qualname__}() got multiple values for argument '{name}'")
    values = self.__dict__  # object.__setattr__ for every field, without a call per field
    values.update(zip(names, args))
    for name in names[given:]:
        if name in kwargs:
            values[name] = kwargs[name]
        elif name in defaults:
            values[name] = defaults[name]
        elif name in factories:
            values[name] = factories[name]()
        else:
            raise TypeError(f"{cls.__qualname__}() missing required argument: '{name}'")
    if post_init:
        self.__post_init__()


def _frozen_setattr(self: Any, name: str, value: Any) -> None:
    raise dataclasses.FrozenInstanceError(f"cannot assign to field '{name}'")


def _frozen_delattr(self: Any, name: str) -> None:
    raise dataclasses.FrozenInstanceError(f"cannot delete field '{name}'")


def record(cls: type[T] | None = None, /, *, frozen: bool = True) -> Any:
    """``@record`` (frozen) or ``@record(frozen=False)``: a dataclass with shared methods."""

    def wrap(c: type[T]) -> type[T]:
        own = set(c.__dict__)
        if not c.__doc__:  # else dataclass writes one from inspect.signature, which tokenizes: slow
            c.__doc__ = f"{c.__name__}({', '.join(c.__dict__.get('__annotations__', {}))})"
        c = dataclasses.dataclass(c, init=False, repr=False, eq=False)
        fields = dataclasses.fields(c)
        if any(not f.init or f.kw_only for f in fields) or len(fields) != len(c.__dataclass_fields__):
            raise TypeError(f"@record {c.__qualname__}: init=False, kw_only and InitVar fields are not supported")
        c.__record_init__ = (
            tuple(f.name for f in fields),
            frozenset(f.name for f in fields),
            {f.name: f.default for f in fields if f.default is not dataclasses.MISSING},
            {f.name: f.default_factory for f in fields if f.default_factory is not dataclasses.MISSING},
            hasattr(c, "__post_init__"),
        )
        c.__record_repr__ = tuple(f.name for f in fields if f.repr)
        c.__record_compare__ = tuple(f.name for f in fields if f.compare)
        methods: dict[str, Callable | None] = {"__init__": _init, "__repr__": _repr, "__eq__": _eq,
                                               "__hash__": _hash if frozen else None}
        if frozen:
            methods |= {"__setattr__": _frozen_setattr, "__delattr__": _frozen_delattr}
        for name, method in methods.items():
            if name not in own:
                setattr(c, name, method)
        return c

    return wrap if cls is None else wrap(cls)
