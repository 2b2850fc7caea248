"""`registry.records.record` behaves as the dataclasses it replaced on the start path did."""

from __future__ import annotations

import dataclasses
import subprocess
import sys

import pytest

from registry.records import FrozenRecordError, field, record, replace


@record
class Mutable:
    name: str
    size: int = 0
    tags: list[str] = field(default_factory=list)

    def describe(self) -> str:
        return f"{self.name}:{self.size}"


@record(frozen=True)
class Frozen:
    name: str
    labels: frozenset[str] = frozenset()


@dataclasses.dataclass
class MutableDataclass:
    name: str
    size: int = 0
    tags: list[str] = dataclasses.field(default_factory=list)


def test_init_repr_and_eq_as_a_dataclass() -> None:
    made = Mutable("a", size=2)
    twin = MutableDataclass("a", size=2)
    assert repr(made) == repr(twin).replace("MutableDataclass", "Mutable")
    assert made == Mutable("a", 2, []) and made != Mutable("a", 3)
    assert made != twin  # another class is never equal, as between two dataclasses
    assert made.describe() == "a:2"  # the class's own methods stay
    assert Mutable("b").tags is not Mutable("b").tags  # each instance its own default
    assert "tags" not in Mutable.__dict__ and Mutable.size == 0  # as dataclasses leaves them
    made.size = 5
    assert made.size == 5
    with pytest.raises(TypeError):
        hash(made)  # mutable and compared by value: unhashable


@pytest.mark.parametrize("call", [lambda: Mutable(), lambda: Mutable("a", 1, [], 4),
                                  lambda: Mutable("a", name="b"), lambda: Mutable("a", other=1)])
def test_wrong_arguments_are_type_errors(call) -> None:
    with pytest.raises(TypeError):
        call()


def test_frozen_records_refuse_assignment_and_hash_by_value() -> None:
    one = Frozen("x", frozenset({"a"}))
    with pytest.raises(FrozenRecordError):
        one.name = "y"  # type: ignore[misc]
    with pytest.raises(AttributeError):
        del one.name  # type: ignore[misc]
    assert hash(one) == hash(Frozen("x", frozenset({"a"})))
    assert {one, Frozen("x", frozenset({"a"}))} == {one}


@record
class WithHidden:
    name: str
    cache: int | None = field(default=None, repr=False, compare=False)


def test_fields_left_out_of_repr_and_eq_and_replace() -> None:
    one = WithHidden("a", 1)
    assert repr(one) == "WithHidden(name='a')" and one == WithHidden("a", 2)
    assert WithHidden.cache is None and WithHidden("b").cache is None
    other = replace(one, cache=None)
    assert other is not one and other.name == "a" and other.cache is None and one.cache == 1
    assert replace(Frozen("x"), name="y") == Frozen("y")
    with pytest.raises(TypeError):
        replace(MutableDataclass("a"), name="b")  # a dataclass is not a record


def test_the_start_path_does_not_import_dataclasses() -> None:
    code = ("import sys; import registry.cli.entry, registry.cli.pod_flags, registry.cli.views, "
            "registry.launcher.run, registry.launcher.stage1_builtin, registry.client.store; "
            "print(sorted(m for m in ('dataclasses', 'inspect', 'click') if m in sys.modules))")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                            check=True, timeout=60)
    assert result.stdout.strip() == "[]"
