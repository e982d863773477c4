"""tokecon.records.record behaves as the dataclass it replaces (shared methods, no generated code)."""

from __future__ import annotations

import dataclasses

import pytest

from tokecon.records import record


@record
class Point:
    x: float
    y: float = 0.0
    tags: list = dataclasses.field(default_factory=list, compare=False)


@record(frozen=False)
class Box:
    size: int

    def __post_init__(self) -> None:
        self.size = max(self.size, 1)


@dataclasses.dataclass(frozen=True)
class Reference:
    x: float
    y: float = 0.0
    tags: list = dataclasses.field(default_factory=list, compare=False)


def test_a_record_reads_and_compares_as_the_dataclass_would():
    p = Point(1.0, y=2.0)
    ref = Reference(1.0, y=2.0)
    assert repr(p) == repr(ref).replace("Reference", "Point")
    assert p == Point(1.0, 2.0, ["ignored in comparison"]) and p != Point(1.0, 3.0)
    assert hash(p) == hash(Point(1.0, 2.0)) and (p == ref) is False
    assert dataclasses.asdict(p) == dataclasses.asdict(ref)
    assert dataclasses.replace(p, y=5.0) == Point(1.0, 5.0)
    assert Point(1.0).tags is not Point(1.0).tags  # a fresh default per object
    assert [f.name for f in dataclasses.fields(Point)] == ["x", "y", "tags"]


def test_frozen_and_mutable_records():
    p = Point(1.0)
    with pytest.raises(dataclasses.FrozenInstanceError):
        p.x = 2.0
    with pytest.raises(dataclasses.FrozenInstanceError):
        del p.x
    b = Box(0)
    assert b.size == 1  # __post_init__ ran
    b.size = 3
    assert b == Box(3)
    with pytest.raises(TypeError):
        hash(b)


@pytest.mark.parametrize("call, message", [
    (lambda: Point(), "missing required argument: 'x'"),
    (lambda: Point(1, 2, [], 4), "takes 3 arguments but 4 were given"),
    (lambda: Point(1, x=2), "multiple values for argument 'x'"),
    (lambda: Point(1, z=2), "unexpected keyword argument 'z'"),
])
def test_wrong_arguments_are_type_errors(call, message):
    with pytest.raises(TypeError, match=message):
        call()


def test_unsupported_field_kinds_are_refused_when_the_class_is_made():
    with pytest.raises(TypeError, match="not supported"):
        @record
        class Hidden:
            x: int = dataclasses.field(default=0, init=False)
