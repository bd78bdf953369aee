"""Local, standard-library-only emulator of useapi.net (Midjourney v2, v3 and the services of
``catalog.py``) and WriteText.ai.

It imports nothing from the rest of the package: its paths, statuses and codes are written from
the APIs' documentation, so it is an oracle the hooks are tested against, not a copy of them
(``tests/emulator/test_independent.py`` keeps it so).

It lets the tests, the demo, the example DAGs and the benchmarks exercise the provider without
paid accounts (useapi.net ended its Midjourney service in June 2026, so there is no live API to
test against). It reproduces the documented contracts and, through fault injection and settings,
the undocumented answers the hooks must survive (cancel of a finished job, token field names,
429/5xx/HTML/dropped connections).

In-process::

    with Emulator(start_delay=0.05) as emu:
        job_id = emu.submit_useapi("a cat")
        ...  # point a hook at emu.url

Separate process: ``python -m airflow_provider_cancel.emulator --port 8765``; drive it through
the ``/_emulator/...`` control endpoints.

Modules: ``facade.py`` (:class:`Emulator`), ``server.py`` (ports and request handler),
``control.py`` (``/_emulator/...``), ``routes.py`` (the routing table), one module per API
(``useapi_v2.py``, ``useapi_v3.py``, ``writetext.py``) and per useapi.net family
(``useapi_discord.py``, ``useapi_jobs.py``, ``useapi_scheduler.py``: a service's API from its
description in ``catalog.py``; ``useapi.py`` holds what they share) described with the types of ``api.py`` and
``model.py``, and ``state.py`` (the store).
``dag_runs.py`` runs a DAG with ``airflow dags test`` against it (``make demo`` and the DAG tests).
"""

from __future__ import annotations

from .facade import Emulator
from .routes import normalize

__all__ = ["Emulator", "normalize"]
