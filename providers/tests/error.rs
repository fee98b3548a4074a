//! `ProviderError` keeps its kind and its cause.

#![allow(clippy::unwrap_used, clippy::expect_used)] // tests: a panic is the failure report

use std::error::Error as _;

use bus_schema::{ErrorKind, ProviderKind};
use providers::ProviderError;
use providers::local::{LocalConfig, LocalIoError, LocalProvider};

#[test]
fn a_provider_error_keeps_its_typed_cause() {
    let cause = std::io::Error::new(std::io::ErrorKind::TimedOut, "slow disk");
    let error = ProviderError::new(ProviderKind::Local, "list", ErrorKind::Transient, cause);
    assert_eq!(error.kind(), ErrorKind::Transient);
    let io = error
        .source()
        .and_then(|s| s.downcast_ref::<std::io::Error>())
        .expect("the io::Error is the source");
    assert_eq!(io.kind(), std::io::ErrorKind::TimedOut);
    assert_eq!(
        error.cause::<std::io::Error>().map(std::io::Error::kind),
        Some(std::io::ErrorKind::TimedOut)
    );
    assert!(error.to_string().contains("slow disk"), "{error}");
}

#[test]
fn the_local_provider_keeps_the_os_error_of_an_unusable_state_dir() {
    let dir = tempfile::tempdir().unwrap();
    // A file where the state directory must go: creating the directory fails.
    let blocked = dir.path().join("state");
    std::fs::write(&blocked, b"not a directory").unwrap();
    let error = LocalProvider::new(LocalConfig {
        controller_id: "test".into(),
        program: "/bin/true".into(),
        args: Vec::new(),
        state_dir: blocked,
    })
    .unwrap_err();
    assert_eq!(error.kind(), ErrorKind::Permanent);
    let cause = error
        .cause::<LocalIoError>()
        .expect("the local I/O error is the source");
    assert_eq!(cause.what, "state dir");
    assert!(cause.source().is_some(), "the io::Error is kept under it");
}
