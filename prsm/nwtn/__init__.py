"""NWTN, the orchestrator: plan, route, execute, compile."""
