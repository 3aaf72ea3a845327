"""Prometheus metrics of this host's runs and scheduler, as a node-exporter textfile and ``cron_worker metrics``.

Switched on by ``CRONMAN_PROMETHEUS_ENABLED = True`` (the ``prometheus``
extra: ``prometheus_client``). The hooks are in
:mod:`cronman_plugins.prometheus.plugin`, the counters and their exposition
in :mod:`cronman_plugins.prometheus.metrics`. See docs/monitoring.md.
"""
