"""Distillation arguments: a bad one is refused naming its flag, before anything runs."""

import pytest

from prsm.cli.distill import spec_from
from prsm.errors import PRSMError


@pytest.mark.parametrize(
    "argv,field",
    [
        (["--steps", "0"], "steps"),
        (["--loss", "mse"], "loss"),
        (["--data", "not-a-cid"], "data"),
        (["--beta", "2"], "beta"),
        (["--name", "Bad Name"], "name"),
    ],
)
def test_bad_arguments_name_the_field(argv, field):
    with pytest.raises(PRSMError) as info:
        spec_from(["--teacher", "t", *argv])
    assert info.value.field == field and f"--{field}" in str(info.value)
