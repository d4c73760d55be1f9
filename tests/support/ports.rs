//! Loopback ports for the peers a test starts.

use std::collections::BTreeSet;
use std::net::TcpListener;
use std::sync::Mutex;

/// A loopback port free now and never handed out before in this process.
///
/// The kernel may give a port it just released to the next `bind(0)`: two ports taken one
/// after the other for one peer (Jaeger's OTLP receiver and its query API, say) can be
/// the same, and the peer then fails to bind its second listener.
pub(crate) fn free_port() -> u16 {
    static TAKEN: Mutex<BTreeSet<u16>> = Mutex::new(BTreeSet::new());
    let mut taken = TAKEN.lock().unwrap_or_else(|e| e.into_inner());
    for _ in 0..1000 {
        let port = TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("a free port")
            .port();
        if taken.insert(port) {
            return port;
        }
    }
    panic!("no loopback port left that this process has not used");
}
