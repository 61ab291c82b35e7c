"""A GPU step on a machine where TensorFlow sees no GPU fails at once with that reason, unless overridden."""

from __future__ import annotations

import dataclasses
import json
from dataclasses import replace
from pathlib import Path

import pytest

from batch_jobs import schema
from batch_jobs.config import parameter_name
from batch_jobs.job import Job, JobArgs, JobEnv, gpu_visible
from batch_jobs.pipeline import Step
from batch_jobs.submit import submit_file
from devtools.drive import World
from router import handler
from router.core import Router


def test_gpu_step_without_gpu_fails_at_once(world: World, clip: Path, tmp_path: Path) -> None:
    if gpu_visible():
        pytest.skip("this machine has a GPU")
    gpu_pipeline = tuple(dataclasses.replace(s, gpu=True) if s.name == "probe" else s for s in world.config.pipeline)
    config = dataclasses.replace(world.config, pipeline=gpu_pipeline)
    world.session.client("ssm").put_parameter(
        Name=parameter_name(config.stack), Value=json.dumps(config.to_json()), Type="String", Overwrite=True
    )
    handler.set_router(Router.from_session(world.session, config.stack))
    assert config.queue_for(Step("probe", "probe", gpu=True)) == config.job_queues["gpu"]
    submitted = submit_file(replace(world.stack, config=config), clip, tmp_path, chunk_seconds=60)
    world.deliver(world.read_stream())
    world.deliver(world.read_stream())
    (job,) = world.jobs()
    assert job["jobQueue"].endswith(config.job_queues["gpu"])
    args = JobArgs("probe", submitted.video_id, 0, 1)
    assert Job(args, JobEnv(job["jobId"], config.stack, allow_cpu=False), world.session).run() == 1
    step = world.store.get_chunk(submitted.video_id, 0).steps[1]
    assert step.state == schema.FAILED
    assert step.error == "step 'probe' needs a GPU but TensorFlow sees none (set DERBY_BATCH_ALLOW_CPU=1)"
    assert step.result is None
