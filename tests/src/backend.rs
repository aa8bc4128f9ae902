//! The stand-in for a Service's endpoints: a tiny HTTP/1.1 server in each node namespace that
//! answers every request with `200` and the node's name, so "the client reached node X" is a plain
//! `curl`. nftables DNAT rules in the node namespace send LoadBalancer traffic (TCP 80) to it.
//!
//! It reads the request head (up to the blank line, at most 8 KiB), answers, and closes the
//! connection (`Connection: close`): one request per connection keeps every curl independent, which
//! is what failover tests want to observe.

use std::net::SocketAddr;
use std::sync::Arc;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// Largest request head the backend reads before answering anyway.
const MAX_HEAD: usize = 8 * 1024;

/// Failures of binding the backend's listeners.
#[derive(Debug, thiserror::Error)]
pub enum BackendError {
    #[error("binding {addr}: {source}")]
    Bind {
        addr: SocketAddr,
        #[source]
        source: std::io::Error,
    },
}

/// The full HTTP response for `node`: status 200, the node name and a newline as the body.
pub fn response(node: &str) -> String {
    let body = format!("{node}\n");
    format!(
        "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )
}

/// Binds every address, then serves forever.
pub async fn serve(node: &str, addrs: &[SocketAddr]) -> Result<(), BackendError> {
    let mut listeners = Vec::new();
    for &addr in addrs {
        let listener = TcpListener::bind(addr)
            .await
            .map_err(|source| BackendError::Bind { addr, source })?;
        listeners.push(listener);
    }
    serve_on(node, listeners).await;
    Ok(())
}

/// Serves forever on listeners already bound.
pub async fn serve_on(node: &str, listeners: Vec<TcpListener>) {
    let reply: Arc<str> = response(node).into();
    let mut tasks = tokio::task::JoinSet::new();
    for listener in listeners {
        let reply = reply.clone();
        tasks.spawn(async move {
            loop {
                // A failed accept (e.g. the peer reset first) affects only that connection.
                if let Ok((stream, _)) = listener.accept().await {
                    tokio::spawn(answer(stream, reply.clone()));
                }
            }
        });
    }
    while tasks.join_next().await.is_some() {}
}

async fn answer(mut stream: TcpStream, reply: Arc<str>) {
    let mut head = Vec::with_capacity(1024);
    let mut buf = [0u8; 1024];
    while head.len() < MAX_HEAD && !head.windows(4).any(|w| w == b"\r\n\r\n") {
        match stream.read(&mut buf).await {
            Ok(0) | Err(_) => return,
            Ok(n) => head.extend_from_slice(&buf[..n]),
        }
    }
    // The client may already be gone; there is no one left to tell.
    let _ = stream.write_all(reply.as_bytes()).await;
    let _ = stream.shutdown().await;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn answers_a_request_with_the_node_name() {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("addr");
        tokio::spawn(async move { serve_on("node-7", vec![listener]).await });
        let mut stream = TcpStream::connect(addr).await.expect("connect");
        stream
            .write_all(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
            .await
            .expect("write");
        let mut reply = String::new();
        stream.read_to_string(&mut reply).await.expect("read");
        assert!(reply.starts_with("HTTP/1.1 200 OK\r\n"), "{reply}");
        assert!(reply.ends_with("\r\n\r\nnode-7\n"), "{reply}");
    }
}
