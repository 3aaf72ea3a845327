"""The scheduler engine, one module per job, bottom-up:

* :mod:`~cronman_core.scheduler.decide`: what is due at ``now`` (pure, clock injected);
* :mod:`~cronman_core.scheduler.state`: the watermark and next-fire cache in the data dir;
* :mod:`~cronman_core.scheduler.tick`: one tick (hooks, decision, claims, spawns);
* :mod:`~cronman_core.scheduler.daemon`: the long-running loop around ticks.

Schedule merging is :mod:`cronman_core.schedule`, the on/off flags
:mod:`cronman_core.switch`, the schedule checks :mod:`cronman_core.checks`.
"""
