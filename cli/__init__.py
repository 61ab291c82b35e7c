"""The `derby-batch` command line: local detection, the AWS pipeline and the embedded local stack."""
