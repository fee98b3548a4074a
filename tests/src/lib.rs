//! End-to-end tests of serverless-hosted-runner live in `tests/`: every hop over a real
//! nats-server, GitHub and the clouds played by the project's simulators, runners as real
//! processes. They drive `shr::harness`, the same harness `shr demo` uses.
