//! End-to-end tests of serverless-hosted-runner live in `tests/`: every hop over a real
//! nats-server, GitHub and the clouds played by the project's simulators, runners as real
//! processes. They drive `shr_lab::harness`, the same harness `shr-lab demo` uses, and run the
//! product binary `shr` for its command line.
//!
//! Must not be depended on by the product; it depends on the lab (`shr-lab`).
