//! Graceful shutdown: SIGTERM (what the kubelet sends) or SIGINT (Ctrl-C) cancels one token that
//! every task watches, so the admin server stops and the leader releases its Lease before exit.

use tokio::signal::unix::{SignalKind, signal};
use tokio_util::sync::CancellationToken;

/// Installs SIGTERM and SIGINT handlers and returns a token cancelled when either arrives.
///
/// The handlers are installed before this returns (not in the spawned task), so a signal that
/// arrives right after the call is never lost to the default action, which would kill the
/// process without releasing the Lease. Must be called inside a Tokio runtime.
pub fn on_signals() -> std::io::Result<CancellationToken> {
    let mut terminate = signal(SignalKind::terminate())?;
    let mut interrupt = signal(SignalKind::interrupt())?;
    let token = CancellationToken::new();
    let cancel = token.clone();
    tokio::spawn(async move {
        let name = tokio::select! {
            _ = terminate.recv() => "SIGTERM",
            _ = interrupt.recv() => "SIGINT",
        };
        tracing::info!(signal = name, "shutting down");
        cancel.cancel();
    });
    Ok(token)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[tokio::test]
    async fn sigterm_cancels_the_token() {
        let token = on_signals().expect("handlers installed");
        assert!(!token.is_cancelled());
        let status = tokio::process::Command::new("kill")
            .args(["-TERM", &std::process::id().to_string()])
            .status()
            .await
            .expect("kill runs");
        assert!(status.success());
        tokio::time::timeout(Duration::from_secs(5), token.cancelled())
            .await
            .expect("token cancelled by SIGTERM");
    }
}
