"""Development tooling, not shipped: the in-process AWS driver for tests, benches, the fault-injecting simulation."""
