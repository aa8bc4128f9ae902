//! A tokio runtime on a thread inside a node's network namespace, for tests and benchmarks that
//! run ferrolb's speaker engine in the lab: every socket it opens belongs to the node.

use std::fs::File;
use std::future::Future;
use std::path::PathBuf;
use std::thread;

use nix::sched::CloneFlags;
use tokio::sync::oneshot;

/// A tokio runtime whose thread lives in a node's network namespace.
pub struct NodeRuntime {
    pub handle: tokio::runtime::Handle,
    stop: Option<oneshot::Sender<()>>,
    thread: Option<thread::JoinHandle<()>>,
}

impl NodeRuntime {
    pub fn enter(namespace: &str) -> Self {
        let path = PathBuf::from("/var/run/netns").join(namespace);
        let (ready_tx, ready) = std::sync::mpsc::channel();
        let thread = thread::spawn(move || {
            let ns = File::open(&path).expect("open the node's namespace");
            // Only this thread moves: the test thread stays in the root namespace.
            nix::sched::setns(&ns, CloneFlags::CLONE_NEWNET).expect("setns into the node");
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("runtime");
            let (stop_tx, stop) = oneshot::channel::<()>();
            ready_tx
                .send((runtime.handle().clone(), stop_tx))
                .expect("hand over the runtime");
            // Drives every task spawned on the handle until the test is done; dropping the
            // runtime then closes the driver's sockets.
            runtime.block_on(async {
                let _ = stop.await;
            });
        });
        let (handle, stop) = ready.recv().expect("runtime in the node");
        NodeRuntime {
            handle,
            stop: Some(stop),
            thread: Some(thread),
        }
    }

    /// Runs `future` on the node's thread and waits for its result.
    pub fn run<T: Send + 'static>(&self, future: impl Future<Output = T> + Send + 'static) -> T {
        self.handle
            .block_on(self.handle.spawn(future))
            .expect("task on the node's runtime")
    }
}

impl Drop for NodeRuntime {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}
