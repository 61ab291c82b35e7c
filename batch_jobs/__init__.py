"""The AWS pipeline: stack config, item schema, S3 layout, split, Batch submission and the job that runs in Batch."""
