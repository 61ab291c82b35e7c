"""ListJobs as AWS answers it and moto never does: a filtered listing in short pages, each with a token."""

from __future__ import annotations

import boto3
from botocore.stub import Stubber

from batch_jobs.batch import BatchClient, JobSpec

SPEC = JobSpec("stk", "stk-gpu", "stk-detect", "game-1", 7, "detect", 2)


def _page(jobs: list[tuple[str, int]], token: str | None) -> dict[str, object]:
    page: dict[str, object] = {
        "jobSummaryList": [{"jobId": job_id, "jobName": SPEC.name, "createdAt": at} for job_id, at in jobs]
    }
    if token:
        page["nextToken"] = token
    return page


def test_find_job_reads_every_page_and_picks_the_first_job_submitted() -> None:
    client = boto3.Session(aws_access_key_id="k", aws_secret_access_key="s", region_name="us-east-1").client("batch")
    named = {"jobQueue": SPEC.queue, "filters": [{"name": "JOB_NAME", "values": [SPEC.name]}]}
    with Stubber(client) as aws:
        aws.add_response("list_jobs", _page([], "t1"), named)
        aws.add_response("list_jobs", _page([("later", 20)], "t2"), {**named, "nextToken": "t1"})
        aws.add_response("list_jobs", _page([("first", 10)], None), {**named, "nextToken": "t2"})
        assert BatchClient(client).find_job(SPEC) == "first"
        aws.assert_no_pending_responses()
