"""``PUT /api/v1/triggers/backfill`` and ``GET /api/v1/triggers/backfill/{id}``.

A backfill answers at once (202) with its id, how many ticks it runs and whether the
range was cut at the cap; ``GET`` shows its progress until it is SUCCESS or FAILED.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request

from .._backfills import BackfillJob, Backfills
from ._errors import ApiError
from ._models import BackfillJobBody, BackfillRequest, ErrorBody, as_utc

router = APIRouter(prefix="/triggers/backfill", tags=["triggers"])

_ERRORS: dict[int | str, dict[str, Any]] = {
    400: {"model": ErrorBody, "description": "A field is missing or malformed."},
    404: {"model": ErrorBody, "description": "No such flow, Schedule trigger or backfill."},
}


def get_backfills(request: Request) -> Backfills:
    """The server's backfill jobs (made with the app)."""
    jobs = getattr(request.app.state, "backfills", None)
    if jobs is None:
        jobs = request.app.state.backfills = Backfills(request.app.state.runtime)
    assert isinstance(jobs, Backfills)
    return jobs


BackfillsDep = Annotated[Backfills, Depends(get_backfills)]


def job_body(job: BackfillJob) -> BackfillJobBody:
    """A job as the API shows it."""
    message = job.error
    if job.capped and message is None:
        message = (
            f"the range holds more than {job.cap:,} ticks: this backfill runs the "
            f"first {job.total:,}, up to {job.covered_until.isoformat()}; start another "
            "backfill from there for the rest"
        )
    return BackfillJobBody(
        id=job.id,
        namespace=job.namespace,
        flow_id=job.flow_id,
        trigger_id=job.trigger_id,
        start=job.start,
        end=job.end,
        state=job.state.value,
        done=job.done,
        total=job.total,
        cap=job.cap,
        capped=job.capped,
        covered_until=job.covered_until,
        message=message,
        executions=list(job.executions),
    )


@router.put("", status_code=202, responses=_ERRORS)
async def backfill(body: BackfillRequest, jobs: BackfillsDep) -> BackfillJobBody:
    """Start creating the executions of a Schedule trigger's ticks in ``[start, end)``.

    Answers at once; read the progress with ``GET /triggers/backfill/{id}``. At most
    ``cap`` ticks run: a longer range is cut, and ``capped``/``coveredUntil`` say where.
    """
    start = as_utc(body.start)
    end = None if body.end is None else as_utc(body.end)
    if end is not None and end <= start:
        raise ApiError(400, "end must be after start", "end")
    job = await jobs.submit(body.namespace, body.flow_id, body.trigger_id, start, end, body.inputs)
    return job_body(job)


@router.get("/{backfill_id}", responses=_ERRORS)
async def get_backfill(backfill_id: str, jobs: BackfillsDep) -> BackfillJobBody:
    """A backfill's progress: ``done`` of ``total`` ticks, and its state."""
    return job_body(jobs.get(backfill_id))
