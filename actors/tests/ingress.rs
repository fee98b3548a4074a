#![allow(clippy::unwrap_used, clippy::expect_used)] // tests: a panic is the failure report
//! The hardened ingress under abuse: slow senders are cut off, a flood beyond the request cap
//! gets 503 with `Retry-After`, and legitimate deliveries still get 2xx.

use std::time::Duration;

use actors::ingress::{self, Limits};
use axum::Router;
use axum::body::Bytes;
use axum::routing::post;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

async fn start(limits: Limits) -> std::net::SocketAddr {
    let router = Router::new().route(
        "/webhook",
        post(|body: Bytes| async move { format!("{}\n", body.len()) }),
    );
    let router = ingress::guard(router, &limits);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(
        async move { ingress::serve(listener, router, &limits, std::future::pending()).await },
    );
    addr
}

async fn deliver(addr: std::net::SocketAddr) -> reqwest::Response {
    let _ = tokio_rustls::rustls::crypto::ring::default_provider().install_default();
    reqwest::Client::new()
        .post(format!("http://{addr}/webhook"))
        .body("{\"action\":\"queued\"}")
        .send()
        .await
        .unwrap()
}

/// Reads until the server closes the connection; what it said, if anything.
async fn until_closed(mut stream: TcpStream, deadline: Duration) -> String {
    let mut out = Vec::new();
    tokio::time::timeout(deadline, stream.read_to_end(&mut out))
        .await
        .expect("the server closed the connection")
        .ok();
    String::from_utf8_lossy(&out).into_owned()
}

#[tokio::test]
async fn slow_and_flooding_clients_do_not_keep_legitimate_deliveries_out() {
    let limits = Limits {
        header_timeout: Duration::from_millis(500),
        request_timeout: Duration::from_millis(800),
        max_requests: 4,
        retry_after_secs: 1,
        shutdown_grace: Duration::from_secs(1),
    };
    let addr = start(limits).await;

    // Slowloris: headers that never finish. They hold no request slot and are cut off.
    let mut slow_headers = Vec::new();
    for _ in 0..20 {
        let mut s = TcpStream::connect(addr).await.unwrap();
        s.write_all(b"POST /webhook HTTP/1.1\r\nHost: x\r\n")
            .await
            .unwrap();
        slow_headers.push(s);
    }
    assert_eq!(
        deliver(addr).await.status(),
        200,
        "served despite slow headers"
    );

    // Slow bodies fill every request slot.
    let mut slow_bodies = Vec::new();
    for _ in 0..4 {
        let mut s = TcpStream::connect(addr).await.unwrap();
        s.write_all(b"POST /webhook HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n{")
            .await
            .unwrap();
        slow_bodies.push(s);
    }
    // A flood beyond the cap is told to come back, at once.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    let busy = loop {
        let resp = deliver(addr).await;
        if resp.status() == 503 {
            break resp;
        }
        assert!(tokio::time::Instant::now() < deadline, "never saw 503");
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    assert_eq!(busy.headers()["retry-after"], "1");

    // The slow ones are cut off: slow headers closed, slow bodies 408.
    for s in slow_headers {
        until_closed(s, Duration::from_secs(5)).await;
    }
    for s in slow_bodies {
        let said = until_closed(s, Duration::from_secs(5)).await;
        assert!(said.starts_with("HTTP/1.1 408"), "{said}");
    }
    // And the legitimate sender, retrying as told, gets through.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    loop {
        let status = deliver(addr).await.status();
        if status == 200 {
            break;
        }
        assert_eq!(status, 503);
        assert!(tokio::time::Instant::now() < deadline, "never got through");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}
