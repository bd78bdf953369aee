"""``[core] hostname_callable`` of the ``make e2e-celery`` deployment.

Every process of that deployment runs on one machine, so Airflow's default (the machine's FQDN)
would give both Celery workers, and both triggerers, the same hostname. Each process started by
``run_e2e_celery.py`` gets ``E2E_PROCESS_NAME`` (``worker-1``, ``triggerer-2``, ...); Airflow
records it as the task instance's ``hostname`` and the triggerer job's ``hostname``, which is how
the driver tells the workers and the triggerers apart.
"""

from __future__ import annotations

import os
import socket


def process_name() -> str:
    return os.environ.get("E2E_PROCESS_NAME") or socket.getfqdn()
