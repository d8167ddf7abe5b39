"""Monitoring configuration shipped with PRSM: Prometheus's scrape config and alert rules, and a
Grafana dashboard. `prsm up --monitor` starts Prometheus with these (prsm/cli/monitor.py); an
installed wheel carries them as the package `prsm.monitoring`."""
