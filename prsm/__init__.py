"""PRSM: plan, route and compile answers across a marketplace of models on Ray Serve."""
