"""Wait until remote jobs are really cancelled."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from airflow_provider_cancel.sensors.status import JobStatusSensor
from airflow_provider_cancel.status import JobStatus


class JobCancelledSensor(JobStatusSensor):
    """Succeed when every job's normalised status is in ``success_statuses`` (``cancelled``).

    :class:`~airflow_provider_cancel.sensors.status.JobStatusSensor` waiting for
    ``("cancelled",)``. Fails fast (no retries) when a job reaches a terminal status outside
    that set, e.g. it completed before the cancel landed, or disappears (404) unless
    ``missing_job_status`` says how to read a missing job. ``unknown`` never counts as done.
    Works in ``poke`` and ``reschedule`` modes and deferrably (default from
    ``[operators] default_deferrable``); in every mode ``timeout`` and ``soft_fail`` mean the
    same. Deferrable mode checks once before deferring. The jobs it waits for were already
    asked to cancel, so ``cancel_on_kill`` and ``cancel_on_timeout`` default to ``False``
    here (pass ``True`` to ask again when the wait is stopped).

    Parameters are those of
    :class:`~airflow_provider_cancel.sensors.status.JobStatusSensor`.

    Example::

        ids = "{{ ti.xcom_pull(task_ids='submit') }}"
        cancel = CancelJobOperator(task_id="cancel", conn_id="writetext_default", job_id=ids)
        cancel >> JobCancelledSensor(
            task_id="wait_cancelled", conn_id="writetext_default", job_id=ids, deferrable=True
        )
    """

    default_success_statuses: tuple[str, ...] = (JobStatus.CANCELLED.value,)

    def __init__(
        self,
        *,
        conn_id: str,
        job_id: Any,
        success_statuses: Sequence[str] = ("cancelled",),
        cancel_on_kill: bool = False,
        cancel_on_timeout: bool = False,
        **kwargs: Any,
    ) -> None:
        super().__init__(
            conn_id=conn_id,
            job_id=job_id,
            success_statuses=success_statuses,
            cancel_on_kill=cancel_on_kill,
            cancel_on_timeout=cancel_on_timeout,
            **kwargs,
        )
