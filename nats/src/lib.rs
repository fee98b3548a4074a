//! shr-nats
