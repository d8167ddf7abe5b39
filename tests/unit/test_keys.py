"""API keys: shown once, stored as a hash, bound to an account and a role; expiry, revocation,
rotation with a grace period; the rules that keep one account out of another's objects."""

import json
import os
from datetime import timedelta

import pytest
from sqlalchemy import select

from prsm.api.auth import acting_for, require
from prsm.db.models import ApiKey, utcnow
from prsm.errors import Forbidden, InvalidInput, Unauthorized
from prsm.keys import DEV_ACCOUNT, provision
from prsm.types import KeyRole, Principal


@pytest.fixture
def keys(services):
    return services.keys


def test_a_key_is_shown_once_and_stored_only_as_a_hash(keys, db):
    token, record = keys.create("alice")
    assert token.startswith(f"prsm_{record.id}_") and len(token) == len("prsm_") + 12 + 1 + 43
    with db.engine.connect() as conn:
        row = conn.execute(select(ApiKey.__table__)).one()
    assert token.split("_", 2)[2] not in json.dumps([str(v) for v in row])  # no secret at rest
    assert keys.authenticate(token) == Principal(record.id, "alice", KeyRole.USER)


def test_a_new_keys_account_is_opened_and_can_hold_funds(keys, services):
    keys.create("newcomer", KeyRole.OWNER)
    assert services.ledger.balance("newcomer") == 0 and services.ledger.balance("escrow:newcomer") == 0


@pytest.mark.parametrize(
    "token",
    [None, "", "Bearer x", "prsm_zzz_abc", "prsm_000000000000_" + "A" * 43, "sk-" + "a" * 48],
)
def test_a_missing_malformed_or_unknown_key_is_unauthorized(keys, token):
    keys.create("alice")
    with pytest.raises(Unauthorized) as info:
        keys.authenticate(token)
    assert info.value.status_code == 401 and info.value.code == "invalid_api_key"


def test_a_wrong_secret_for_a_real_key_id_is_unauthorized(keys):
    token, record = keys.create("alice")
    forged = f"prsm_{record.id}_" + ("B" if token[-1] != "B" else "C") * 43
    keys.authenticate(token)  # now cached: the cache must not let the wrong secret through
    with pytest.raises(Unauthorized):
        keys.cached(forged) or keys.authenticate(forged)


def test_revoked_and_expired_keys_stop_at_once(keys):
    token, record = keys.create("alice")
    assert keys.cached(token) is None and keys.authenticate(token)  # read once: cached from now on
    assert keys.cached(token) is not None
    keys.revoke(record.id)
    with pytest.raises(Unauthorized):
        keys.cached(token) or keys.authenticate(token)
    soon, _ = keys.create("bob", expires_at=utcnow() + timedelta(seconds=0.05))
    assert keys.authenticate(soon)
    import time

    time.sleep(0.06)
    with pytest.raises(Unauthorized):
        keys.cached(soon) or keys.authenticate(soon)
    with pytest.raises(InvalidInput):
        keys.create("bob", expires_at=utcnow() - timedelta(days=1))


def test_rotation_gives_a_new_key_and_the_old_one_works_only_for_the_grace_period(keys):
    old_token, old = keys.create("alice", KeyRole.OWNER, name="ci")
    new_token, new = keys.rotate(old.id, grace_s=3600)
    assert (new.account, new.role, new.name) == ("alice", KeyRole.OWNER, "ci") and new.id != old.id
    assert keys.authenticate(old_token) and keys.authenticate(new_token)
    assert keys.get(old.id).replaced_by == new.id
    _, newest = keys.rotate(new.id, grace_s=0)
    with pytest.raises(Unauthorized):
        keys.authenticate(new_token)
    with pytest.raises(InvalidInput):
        keys.rotate(new.id, grace_s=10)  # a key that no longer works is not rotated
    assert [k.id for k in keys.list("alice")][0] == newest.id


def test_roles_are_ordered_and_a_key_acts_only_for_its_own_account():
    user, owner, operator = (Principal("k", "alice", r) for r in KeyRole)
    assert operator.role.at_least(KeyRole.OWNER) and owner.role.at_least(KeyRole.USER)
    assert not user.role.at_least(KeyRole.OWNER)
    with pytest.raises(Forbidden):
        require(user, KeyRole.OWNER, "registering a model")
    assert acting_for(user, None, "owner") == "alice" and acting_for(user, "alice", "owner") == "alice"
    with pytest.raises(Forbidden) as info:
        acting_for(owner, "mallory", "owner")
    assert info.value.field == "owner" and info.value.status_code == 403
    assert acting_for(operator, "mallory", "owner") == "mallory"


def test_the_local_keys_are_made_once_readable_by_their_owner_only(keys, settings, tmp_path):
    path = tmp_path / "keys.json"
    made = provision(keys, path, settings.operator_account)
    assert os.stat(path).st_mode & 0o777 == 0o600
    assert keys.authenticate(made["operator"]).role == KeyRole.OPERATOR
    dev = keys.authenticate(made["dev"])
    assert (dev.account, dev.role) == (DEV_ACCOUNT, KeyRole.OWNER)
    assert provision(keys, path, settings.operator_account) == made  # still good: kept
    keys.revoke(dev.key_id)
    again = provision(keys, path, settings.operator_account)
    assert again["dev"] != made["dev"] and keys.authenticate(again["dev"])
