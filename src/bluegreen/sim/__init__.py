"""Local blue/green deployment simulator.

Real PostgreSQL / MariaDB servers on loopback addresses (:mod:`.servers`),
simulated DNS through libnss-wrapper (:mod:`.dns`), an isolated runner
(:mod:`.netns`) and whole blue/green deployments with replication
(:mod:`.deployment`).  Import those modules directly; this package module
stays free of heavy imports.
"""
