"""The error codec: every PRSM error crosses a process boundary as itself."""

import pickle

import pytest

from prsm import errors
from prsm.errors import InsufficientFunds, PRSMError, error_from_dict


def every_error() -> list[type[PRSMError]]:
    found, todo = [], [PRSMError]
    while todo:
        cls = todo.pop()
        found.append(cls)
        todo += cls.__subclasses__()
    return found


def test_every_error_type_lives_in_the_errors_module():
    # A type defined elsewhere might not be imported where the error arrives: it would decode
    # as another type. tests/unit/test_architecture.py checks no module defines one elsewhere.
    assert {cls.__module__ for cls in every_error()} == {"prsm.errors"}
    assert len(every_error()) > 15


@pytest.mark.parametrize("cls", every_error(), ids=lambda c: c.__name__)
def test_an_error_survives_pickling_and_its_dict_with_type_status_field_and_figures(cls):
    import ray.cloudpickle

    figures = {name: kind(7 * (i + 1)) for i, (name, kind) in enumerate(cls.figures.items())}
    error = cls("what went wrong", "the_field", **figures)
    for back in (
        pickle.loads(pickle.dumps(error)),
        ray.cloudpickle.loads(ray.cloudpickle.dumps(error)),  # how Ray ships an error
        error_from_dict(error.to_dict()),
    ):
        assert type(back) is cls and back.status_code == cls.status_code
        assert (back.message, back.field) == ("what went wrong", "the_field")
        assert {name: getattr(back, name) for name in cls.figures} == figures
        assert back.to_dict() == error.to_dict()


def test_insufficient_funds_keeps_what_was_needed_and_what_was_available():
    error = InsufficientFunds("too poor", "user", needed=10**30, available=5)
    back = pickle.loads(pickle.dumps(error))
    assert (back.needed, back.available) == (10**30, 5)
    assert back.to_dict() == {"type": "InsufficientFunds", "field": "user", "message": "too poor",
                              "needed": str(10**30), "available": "5"}  # fmt: skip


def test_an_indirect_subclass_keeps_its_own_type():
    back = error_from_dict(errors.InvalidCID("bad CID", "cid").to_dict())
    assert (
        type(back) is errors.InvalidCID and back.status_code == 400 and isinstance(back, errors.InvalidInput)
    )


def test_an_unknown_type_decodes_as_a_prsm_error_and_a_figure_it_does_not_carry_is_refused():
    back = error_from_dict({"type": "FromTheFuture", "field": None, "message": "hm"})
    assert type(back) is PRSMError and back.status_code == 500
    with pytest.raises(TypeError):
        errors.UnknownModel("x", "model", needed=3)
