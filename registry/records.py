"""`record`: plain data classes for the modules on `pyrkt run`'s start path.

What those modules used of `dataclasses` (typed fields with defaults or default factories, an
`__init__` taking them by position or name, `__repr__`, `__eq__`, frozen instances and their
hash), made without it: `dataclasses` imports inspect (and with it ast, dis, tokenize) and
writes each class's methods as source text to exec, ~5 ms of every `pyrkt run` for the
twenty-odd classes it loads. Type checkers see a record as a dataclass (PEP 681).

    @record
    class Mount:
        volume: str
        target: str = "/"
        extra: list[str] = field(default_factory=list)
        cache: dict[str, str] | None = field(default=None, repr=False, compare=False)

Fields are the class's own annotations, in order (no inheritance of fields); a method the class
defines itself is kept, as dataclasses keeps it. Imports nothing of ours but registry.errors.
"""

from __future__ import annotations

from registry.errors import PyrktError

# typing stays out of every `pyrkt` start (~2 ms with its own imports): the type checker reads
# `record`'s typed overloads, the running program its plain definition
TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable
    from typing import Any, TypeVar, dataclass_transform, overload

    T = TypeVar("T")


class FrozenRecordError(PyrktError, AttributeError):
    """Assigning to a field of a frozen record (dataclasses' FrozenInstanceError)."""


_MISSING: Any = object()


class _Field:
    __slots__ = ("default", "make", "shown", "compared")

    def __init__(self, default: Any, make: Callable[[], Any] | None, shown: bool,
                 compared: bool) -> None:
        self.default, self.make, self.shown, self.compared = default, make, shown, compared


def field(*, default: Any = _MISSING, default_factory: Callable[[], Any] | None = None,
          repr: bool = True, compare: bool = True) -> Any:
    """A field with options, as dataclasses' `field`: a default, or a default made fresh for
    each instance; left out of `__repr__` or of `__eq__` (and the hash)."""
    return _Field(default, default_factory, repr, compare)


def _build(cls: type[T], frozen: bool) -> type[T]:
    names = tuple(cls.__dict__.get("__annotations__", {}))
    defaults: dict[str, Any] = {}
    shown, compared = list(names), list(names)
    for name in names:
        if name not in cls.__dict__:
            continue
        value = cls.__dict__[name]
        if isinstance(value, _Field):
            if not value.shown:
                shown.remove(name)
            if not value.compared:
                compared.remove(name)
            if value.make is not None:
                defaults[name] = value
                delattr(cls, name)  # as dataclasses: no class attribute for a factory field
                continue
            if value.default is _MISSING:
                delattr(cls, name)
                continue
            value = value.default
            setattr(cls, name, value)
        defaults[name] = value
    known = frozenset(names)
    title = cls.__name__

    def __init__(self: Any, *args: Any, **kwargs: Any) -> None:
        if len(args) > len(names):
            raise TypeError(f"{title}() takes {len(names)} positional arguments but "
                            f"{len(args)} were given")
        values = dict(zip(names, args, strict=False))
        for key, value in kwargs.items():
            if key not in known:
                raise TypeError(f"{title}() got an unexpected keyword argument {key!r}")
            if key in values:
                raise TypeError(f"{title}() got multiple values for argument {key!r}")
            values[key] = value
        for name in names:
            if name in values:
                value = values[name]
            elif name in defaults:
                value = defaults[name]
                if isinstance(value, _Field):
                    value = value.make()  # type: ignore[misc]
            else:
                raise TypeError(f"{title}() missing required argument: {name!r}")
            object.__setattr__(self, name, value)

    def __repr__(self: Any) -> str:
        text = ", ".join(f"{name}={getattr(self, name)!r}" for name in shown)
        return f"{type(self).__qualname__}({text})"

    def __eq__(self: Any, other: object) -> bool:
        if other.__class__ is not self.__class__:
            return NotImplemented
        return tuple(getattr(self, n) for n in compared) == \
            tuple(getattr(other, n) for n in compared)

    methods: dict[str, Any] = {"__init__": __init__, "__repr__": __repr__, "__eq__": __eq__}
    if frozen:
        def __setattr__(self: Any, name: str, value: Any) -> None:
            raise FrozenRecordError(f"cannot assign to field {name!r}")

        def __delattr__(self: Any, name: str) -> None:
            raise FrozenRecordError(f"cannot delete field {name!r}")

        def __hash__(self: Any) -> int:
            return hash(tuple(getattr(self, n) for n in compared))

        methods.update(__setattr__=__setattr__, __delattr__=__delattr__, __hash__=__hash__)
    elif "__hash__" not in cls.__dict__:
        methods["__hash__"] = None  # mutable and compared by value: unhashable, as dataclasses
    cls.__record_fields__ = names  # type: ignore[attr-defined]
    for name, method in methods.items():
        if name not in cls.__dict__:
            if method is not None:
                method.__qualname__ = f"{cls.__qualname__}.{name}"
            setattr(cls, name, method)
    return cls


if TYPE_CHECKING:
    @overload
    def record(cls: type[T], /) -> type[T]: ...

    @overload
    def record(*, frozen: bool = False) -> Callable[[type[T]], type[T]]: ...

    @dataclass_transform(field_specifiers=(field,))
    def record(cls: type[T] | None = None, /, *, frozen: bool = False
               ) -> type[T] | Callable[[type[T]], type[T]]: ...
else:
    def record(cls=None, /, *, frozen=False):
        """The class as a record (`@record` or `@record(frozen=True)`)."""
        if cls is None:
            return lambda bare: _build(bare, frozen)
        return _build(cls, frozen)


def replace(obj: T, /, **changes: Any) -> T:
    """A copy of the record `obj` with some fields changed (as dataclasses.replace)."""
    names = getattr(type(obj), "__record_fields__", None)
    if names is None:
        raise TypeError("replace() should be called on record instances")
    values = {name: getattr(obj, name) for name in names}
    values.update(changes)
    return type(obj)(**values)
