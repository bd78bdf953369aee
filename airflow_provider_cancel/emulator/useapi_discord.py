"""useapi.net's Discord-era services (InsightFaceSwap ``faceswap``, PixVerse v1): Midjourney v2's
shape below ``/v1/{svc}``.

``GET /v1/{svc}/jobs/cancel/?jobid=`` cancels a running job (200 ``status: cancelled``), ``GET
/v1/{svc}/jobs/?jobid=`` reads it; a cancel of a finished job answers as
``finished_cancel_answer`` says, as on v2. The paths come from each service's description in
``catalog.py``, transcribed from the docs.
"""

from __future__ import annotations

from . import handlers, useapi, useapi_v2
from .api import Api
from .catalog import Service, model_key
from .model import JobModel


def api(service: Service) -> Api:
    """The emulated API of one Discord-era service."""
    model = JobModel(
        key=model_key(service),
        steps=useapi.STEPS,
        completed="completed",
        cancelled="cancelled",
        normalized=service.statuses,
        new_id=useapi_v2.discord_id(service.name),
    )
    return Api(
        route_prefix=model.key,
        endpoints=(
            *useapi.endpoints(service.cancel, "cancel", "cancel", handlers.cancel_job),
            *useapi.endpoints(service.status, "job", "status", handlers.read_job),
        ),
        model=model,
        job_body=useapi_v2.body,
        cancel=useapi_v2.CANCEL,
        missing_text=useapi_v2.MISSING,
        error_code=True,
        id_required=useapi_v2.ID_REQUIRED,
        **useapi.COMMON,
    )
