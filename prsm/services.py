"""The one place that builds PRSM's long-lived parts from the settings.

    services = Services.from_settings(settings)   # or Services() for the environment's settings
    services.ledger.balance("alice")
    services.close()                              # or `with Services(...) as services:`

Every process builds it the same way: Serve deployments, the CLI, jobs, benchmarks and tests.
Each part is made on first use, so a process pays only for what it touches (a model replica
never opens a ledger, a router never opens a block store), and `close` closes what was made.
"""

from __future__ import annotations

import os
from functools import cached_property
from typing import TYPE_CHECKING

from prsm.audit import AuditLog
from prsm.backends import LocalModels
from prsm.backends.sandbox import Limits, Sandbox
from prsm.db.engine import Database
from prsm.egress import EgressPolicy
from prsm.ftns.billing import Billing
from prsm.ftns.ledger import Ledger
from prsm.keys import ApiKeys
from prsm.nwtn.route import MarketPolicy
from prsm.nwtn.sessions import SessionStore
from prsm.registry import Registry
from prsm.sealing import Sealer
from prsm.settings import Settings
from prsm.storage import open_store
from prsm.storage.artifacts import Artifacts
from prsm.storage.base import BlockStore
from prsm.weights import prepare_default

if TYPE_CHECKING:  # the chain client imports web3: only processes that settle load it
    from prsm.chain.client import Chain


class Services:
    def __init__(self, settings: Settings | None = None):
        self.settings = settings or Settings()

    @classmethod
    def from_settings(cls, settings: Settings | dict | None = None, *, upgrade: bool = False) -> Services:
        """Services for `settings` (a Settings, its JSON dump as Serve passes it, or None for the
        environment's). With `upgrade`, the database is migrated to the newest revision first."""
        if isinstance(settings, dict):
            settings = Settings(**settings)
        services = cls(settings)
        if upgrade:
            services.settings.data_dir.mkdir(parents=True, exist_ok=True)
            services.db.upgrade()
        return services

    @cached_property
    def db(self) -> Database:
        return Database.open(self.settings.resolved_database_url)

    @cached_property
    def ledger(self) -> Ledger:
        return Ledger(self.db, self.settings.federation_credit)

    @cached_property
    def billing(self) -> Billing:
        return Billing(self.ledger, self.settings)

    @cached_property
    def audit(self) -> AuditLog:
        return AuditLog(self.db)

    @cached_property
    def keys(self) -> ApiKeys:
        return ApiKeys(self.db, self.ledger)

    @cached_property
    def registry(self) -> Registry:
        return Registry(self.db)

    @cached_property
    def sessions(self) -> SessionStore:
        return SessionStore(self.db, self.ledger)

    @cached_property
    def store(self) -> BlockStore:
        """The content-addressed block store: local, or an IPFS node (PRSM_IPFS_URL)."""
        return open_store(self.settings)

    @cached_property
    def artifacts(self) -> Artifacts:
        return Artifacts(self.db, self.store)

    @cached_property
    def models(self) -> LocalModels:
        """Models hosted in this process: a Serve model replica's, or NWTN's without a cluster.
        Generation uses every core: Ray would otherwise cap torch at the actor's CPU share."""
        return LocalModels(
            self.registry, self.settings.resolved_model_dir, self.store, os.cpu_count(), self.sandbox,
            self.egress, self.sealer, self.node_key,
        )  # fmt: skip

    def node_key(self):
        """This node's chain key (its identity to peer nodes): PRSM_CHAIN_KEY or the keystore."""
        from prsm.chain.signing import operator_key

        return operator_key(self.settings)

    @cached_property
    def market(self) -> MarketPolicy:
        """The router's governance: price bounds, and the share new cards get."""
        s = self.settings
        return MarketPolicy(
            proven_calls=s.proven_calls,
            new_card_share=s.new_card_share,
            trusted_owners=frozenset({"prsm-foundation", s.operator_account}),
            max_price_per_call=s.max_price_per_call,
            max_price_per_1k_tokens=s.max_price_per_1k_tokens,
            federated=frozenset(s.federation_capabilities),
        )

    @cached_property
    def egress(self) -> EgressPolicy:
        """Where remote cards may send requests, and each call's bounds."""
        s = self.settings
        return EgressPolicy.from_entries(
            s.egress_allow, deadline_s=s.remote_deadline_s, max_response_bytes=s.remote_max_response_bytes
        )

    @cached_property
    def sealer(self) -> Sealer:
        """Seals and opens remote cards' credentials with the node's secret key."""
        if self.settings.secret_key is not None:
            return Sealer.from_hex(self.settings.secret_key.get_secret_value())
        return Sealer.from_file(self.settings.secret_key_file)

    @cached_property
    def sandbox(self) -> Sandbox:
        """Worker processes for tool calls, shared by the process (started on first use)."""
        s = self.settings
        limits = Limits(s.tool_cpu_s, s.tool_memory_mb * 1024**2, s.tool_wall_s, s.tool_workers)
        return Sandbox.shared(limits)

    @cached_property
    def chain(self) -> Chain:
        """The chain the settings name: the in-process EVM, or a JSON-RPC node (PRSM_CHAIN_URL)."""
        from prsm.chain.client import Chain

        return Chain.connect(self.settings)

    def prepare_default_model(self) -> tuple[str, str]:
        """Make the shipped default model loadable here (prsm/weights.py): (weights, folder)."""
        weights, folder = prepare_default(
            self.registry, self.store, self.artifacts, self.settings.resolved_model_dir
        )
        return weights, str(folder)

    def close(self) -> None:
        made = self.__dict__
        if "chain" in made:
            made["chain"].close()
        if "store" in made:
            made["store"].close()
        if "db" in made:
            made["db"].dispose()

    def __enter__(self) -> Services:
        return self

    def __exit__(self, *exc) -> None:
        self.close()
