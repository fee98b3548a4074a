//! github-client
