"""Admin paths: ``/segments``, ``/model-info``, the background jobs ``/batch-process`` and
``/train``, and their states ``/jobs/{kind}``; ``/experiment``, the A/B experiment over deal policies."""

from __future__ import annotations

import os
from typing import Annotated, Any

from fastapi import APIRouter, Body, HTTPException, Path

from recsys.config import ConfigError
from recsys.deals.experiment import ExperimentConfig
from recsys.serialization import config_from_json, config_to_json
from recsys.service.deps import ERRORS, PREFIX, Admin, JSONAnswer, State
from recsys.service.schemas import (
    BatchJob,
    DealPolicyResponse,
    ErrorResponse,
    JobAccepted,
    ModelInfoResponse,
    SegmentsResponse,
)
from recsys.validation import InvalidRequest

router = APIRouter(prefix=PREFIX, tags=["admin"])


def _busy(kind: str) -> dict[int | str, dict[str, Any]]:
    return {**ERRORS, 409: {"model": ErrorResponse, "description": f"a {kind} job is running"}}


@router.get("/segments", response_model=SegmentsResponse, responses=ERRORS)
async def segments(who: Admin, state: State) -> JSONAnswer:
    """Segments (size, average age, dominant region, age group, tier, price sensitivity) and clustering info."""
    await state.sync()
    return JSONAnswer(state.engine.segments())


@router.get("/model-info", response_model=ModelInfoResponse, responses=ERRORS)
async def model_info(who: Admin, state: State) -> dict[str, Any]:
    """What is trained, when, on which data; the latest batch-process and train jobs (a failed job says why);
    which Stage 2 and engine versions this worker serves (a failed load of a published one says why)."""
    await state.sync()
    batch_job, train_job = await state.job("batch-process"), await state.job("train")
    # no await from here: the engine described and the versions reported are the ones served (a swap
    # happens only between two awaits)
    info = state.engine.model_info()
    info.update(batch_job=batch_job, train_job=train_job,
                live_events_applied=state.events_applied, shared_history=state.event_log.kind,
                served_batch_version=state.batch_version, served_engine_version=state.engine_version,
                engine_load_error=state.engine_load_error, worker_pid=os.getpid())
    return info


@router.post("/batch-process", response_model=JobAccepted, status_code=202, responses=_busy("batch"))
async def batch_process(who: Admin, state: State) -> dict[str, Any]:
    """Stage 2 (SVD, segments, demand, seasonality) in the background; the new artifacts are swapped in
    atomically when complete. Requests meanwhile are answered from the previous model."""
    job = await state.start_job("batch-process")
    return {"status": "accepted", "job": job, "status_url": f"{PREFIX}/jobs/batch-process"}


@router.post("/train", response_model=JobAccepted, status_code=202, responses=_busy("train"))
async def train(who: Admin, state: State) -> dict[str, Any]:
    """Retrain every stage on the model's data in the background; the new engine (with the live
    events replayed) replaces the served one atomically, in every worker (saved into the model
    directory and loaded by the others)."""
    job = await state.start_job("train")
    return {"status": "accepted", "job": job, "status_url": f"{PREFIX}/jobs/train"}


@router.get("/jobs/{kind}", response_model=BatchJob,
            responses={**ERRORS, 404: {"model": ErrorResponse, "description": "no job of that kind yet"}})
async def job_status(kind: Annotated[str, Path(pattern="^(batch-process|train)$")], who: Admin,
                     state: State) -> dict[str, Any]:
    """The latest job of `kind` (`batch-process` or `train`): running, completed, or failed with the error."""
    job = await state.job(kind)
    if job is None:
        raise HTTPException(404, f"no {kind} job has run yet")
    return job


def _deal_policy(state: State, version: str | None) -> dict[str, Any]:
    exploration, experiment = state.engine.deal_policy()
    return {"experiment": config_to_json(experiment), "exploration": config_to_json(exploration),
            "engine_version": version}


@router.get("/experiment", response_model=DealPolicyResponse, responses=ERRORS)
async def experiment(who: Admin, state: State) -> dict[str, Any]:
    """The A/B experiment over deal policies and the deals' logging policy this worker serves."""
    await state.sync()
    return _deal_policy(state, state.engine_version)


@router.put("/experiment", response_model=DealPolicyResponse, responses=ERRORS)
async def set_experiment(who: Admin, state: State, body: Annotated[dict[str, Any], Body(
        description="`name` ('' ends the experiment), `salt`, `variants`: [{`name`, `share`, "
                    "`use_price_sensitivity`, `exploration`: {`enabled`, `epsilon`, `holdout_share`, ...}}]")]
        ) -> dict[str, Any]:
    """Start (or end) an A/B experiment: users are assigned to variants by a hash of their id; each
    variant is a deal policy; every deal answered and every decision logged carries its variant.
    Saved as a new engine version that every worker loads."""
    try:
        experiment = config_from_json(ExperimentConfig, body)
    except (ConfigError, ValueError, TypeError) as err:
        raise InvalidRequest(f"experiment: {err}") from None
    version = await state.set_experiment(experiment)
    return _deal_policy(state, version)
