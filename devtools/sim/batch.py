"""AWS Batch as the simulation sees it: moto stores the jobs (SubmitJob, ListJobs, DescribeJobs, TerminateJob go to
it over HTTP), this table says what each job is doing, and botocore `after-call` hooks make moto's answers agree with
it (moto alone would call every job SUCCEEDED at once). Faults live here too: ListJobs lagging behind SubmitJob,
SubmitJob throttled or refused for good, DescribeJobs forgetting a job.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from botocore.exceptions import ClientError

from batch_jobs.lifecycle import JOB_FAILED, JOB_RUNNABLE, JOB_RUNNING, JOB_SUCCEEDED

QUEUED, RUNNING, ENDED = "queued", "running", "ended"
API_PARAMS = "sim_api_params"  # where `stash_params` keeps a call's API parameters in botocore's request context


def stash_params(params: dict[str, Any], context: dict[str, Any], **_: Any) -> None:
    """`before-parameter-build` hook: keep the call's parameters for the `after-call` hooks (which do not get them)."""
    context[API_PARAMS] = dict(params)


@dataclass
class SimJob:
    job_id: str
    name: str
    parameters: dict[str, str]
    description: dict[str, Any]  # as DescribeJobs returned it once: what its events are built from
    phase: str = QUEUED
    status: str = JOB_RUNNABLE  # what DescribeJobs answers
    reason: str = ""
    terminated: str | None = None  # TerminateJob's reason
    hidden_until: int = 0  # ListJobs lags: the job is not listed before this tick
    vanished: bool = False  # DescribeJobs no longer knows it
    started: bool = False
    phase_at_heal: str | None = None  # where it stood when the faults stopped


@dataclass
class SimBatch:
    raw: Any  # a batch client without the hooks: moto's own answers
    jobs: dict[str, SimJob] = field(default_factory=dict)
    tick: int = 0
    refuse_submit: str | None = None  # "throttle" or "refuse": the next SubmitJob fails so
    lag_ticks: int = 0  # a job submitted now is hidden from ListJobs this long

    HOOKS = (
        ("before-parameter-build.batch.SubmitJob", "_before_submit"),
        ("after-call.batch.SubmitJob", "_after_submit"),
        ("after-call.batch.ListJobs", "_after_list"),
        ("after-call.batch.DescribeJobs", "_after_describe"),
        ("after-call.batch.TerminateJob", "_after_terminate"),
    )  # (botocore event, method): how a batch client is wired to this table

    def _before_submit(self, params: dict[str, Any], **_: Any) -> None:
        refusal, self.refuse_submit = self.refuse_submit, None
        if refusal == "throttle":
            raise _error("TooManyRequestsException", "Too Many Requests", 429, "SubmitJob")
        if refusal == "refuse":
            raise _error("ClientException", f"Job queue {params.get('jobQueue')} does not exist.", 400, "SubmitJob")

    def _after_submit(self, parsed: dict[str, Any], context: dict[str, Any], **_: Any) -> None:
        params, job_id = context[API_PARAMS], parsed.get("jobId")
        if not job_id:
            return
        description = dict(self.raw.describe_jobs(jobs=[job_id])["jobs"][0])
        parameters = dict(params.get("parameters") or {})
        hidden = self.tick + self.lag_ticks
        self.jobs[job_id] = SimJob(job_id, params["jobName"], parameters, description, hidden_until=hidden)

    def _after_list(self, parsed: dict[str, Any], **_: Any) -> None:
        listed = []
        for summary in parsed.get("jobSummaryList") or []:
            sim = self.jobs.get(summary["jobId"])
            if sim is not None and sim.hidden_until > self.tick:
                continue
            if sim is not None:
                summary["status"] = sim.status
            listed.append(summary)
        parsed["jobSummaryList"] = listed

    def _after_describe(self, parsed: dict[str, Any], **_: Any) -> None:
        out = []
        for job in parsed.get("jobs") or []:
            sim = self.jobs.get(job["jobId"])
            if sim is None:
                out.append(job)
                continue
            if sim.vanished:
                continue
            job["status"], job["statusReason"] = sim.status, sim.reason
            out.append(job)
        parsed["jobs"] = out

    def _after_terminate(self, context: dict[str, Any], **_: Any) -> None:
        params = context[API_PARAMS]
        sim = self.jobs.get(params["jobId"])
        if sim is not None and sim.terminated is None:
            sim.terminated = str(params.get("reason", "terminated"))
            if sim.phase == RUNNING:  # Batch stops its container; the actor dies at its next step
                sim.status, sim.reason = JOB_FAILED, sim.terminated

    def end(self, sim: SimJob, succeeded: bool, reason: str = "") -> None:
        sim.phase, sim.reason = ENDED, reason
        sim.status = JOB_SUCCEEDED if succeeded else JOB_FAILED

    def start(self, sim: SimJob) -> None:
        sim.phase, sim.status, sim.started = RUNNING, JOB_RUNNING, True

    def queued(self) -> list[SimJob]:
        return [j for j in self.jobs.values() if j.phase == QUEUED]


def _error(code: str, message: str, status: int, operation: str) -> ClientError:
    response: Any = {"Error": {"Code": code, "Message": message}, "ResponseMetadata": {"HTTPStatusCode": status}}
    return ClientError(response, operation)
