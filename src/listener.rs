//! The HTTP listeners the daemon owns (the API, `/metrics`) served one way: a cap on open
//! connections and a deadline for each request head, so that no client can hold them
//! (20,000 half-open connections once made a normal request take 11 s).

use axum::Router;
use std::sync::Arc;

/// What every listener we own bounds.
#[derive(Clone, Copy, Debug)]
pub struct ListenerLimits {
    pub max_connections: usize,
    pub header_read_timeout: std::time::Duration,
}

/// Serves `app` on `listener` until `shutdown`, then lets the requests in progress finish.
/// A connection slot is taken before `accept`, so past the cap connections wait in the
/// kernel's backlog rather than costing a task and a descriptor each; hyper's header-read
/// timer closes those that do not send a request head in time.
pub async fn serve(
    listener: tokio::net::TcpListener,
    app: Router,
    limits: ListenerLimits,
    shutdown: impl std::future::Future<Output = ()>,
) {
    use hyper_util::rt::{TokioIo, TokioTimer};
    let max = limits
        .max_connections
        .clamp(1, tokio::sync::Semaphore::MAX_PERMITS);
    let slots = Arc::new(tokio::sync::Semaphore::new(max));
    let (closing_tx, closing) = tokio::sync::watch::channel(false);
    let mut shutdown = std::pin::pin!(shutdown);
    loop {
        let slot = tokio::select! {
            slot = slots.clone().acquire_owned() => slot.expect("never closed"),
            () = &mut shutdown => break,
        };
        let stream = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => stream,
                Err(_) => {
                    // Out of descriptors, or a connection reset before it was accepted.
                    tokio::time::sleep(std::time::Duration::from_millis(20)).await;
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        let service = hyper_util::service::TowerToHyperService::new(app.clone());
        let mut closing = closing.clone();
        tokio::spawn(async move {
            let _slot = slot;
            let mut builder = hyper::server::conn::http1::Builder::new();
            builder
                .timer(TokioTimer::new())
                .header_read_timeout(limits.header_read_timeout);
            let conn = builder.serve_connection(TokioIo::new(stream), service);
            let mut conn = std::pin::pin!(conn);
            tokio::select! {
                _ = conn.as_mut() => {}
                _ = closing.changed() => {
                    conn.as_mut().graceful_shutdown();
                    let _ = conn.await;
                }
            }
        });
    }
    drop(listener);
    let _ = closing_tx.send(true);
    // Every slot back: every connection closed.
    let _ = slots.acquire_many(max as u32).await;
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{Read, Write};
    use std::time::{Duration, Instant};

    #[test]
    fn a_silent_connection_is_closed_at_the_header_deadline_and_frees_its_slot() {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let listener = runtime
            .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
            .unwrap();
        let addr = listener.local_addr().unwrap();
        let limits = ListenerLimits {
            max_connections: 1,
            header_read_timeout: Duration::from_millis(300),
        };
        let app = Router::new().fallback(|| async { "served" });
        std::thread::spawn(move || {
            runtime.block_on(serve(listener, app, limits, std::future::pending()))
        });
        // The only slot is taken by a client that never sends a request head...
        let mut silent = std::net::TcpStream::connect(addr).unwrap();
        silent
            .set_read_timeout(Some(Duration::from_secs(5)))
            .unwrap();
        let started = Instant::now();
        let mut buf = Vec::new();
        let _ = silent.read_to_end(&mut buf);
        // ...until the deadline closes it.
        assert!(
            started.elapsed() < Duration::from_secs(3),
            "{:?}",
            started.elapsed()
        );
        // Then the next client gets the slot.
        let mut client = std::net::TcpStream::connect(addr).unwrap();
        client
            .set_read_timeout(Some(Duration::from_secs(5)))
            .unwrap();
        client
            .write_all(b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            .unwrap();
        let mut answer = String::new();
        client.read_to_string(&mut answer).unwrap();
        assert!(answer.contains("served"), "{answer}");
    }
}
