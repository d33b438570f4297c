//! A TCP proxy between the server and its database that a test can cut and
//! restore: a cut drops every live connection and then refuses or
//! blackholes new ones; a restore forwards again.

use std::net::SocketAddr;

use tokio::{
    net::{TcpListener, TcpStream},
    sync::watch,
};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Cut {
    /// New connections are accepted and closed at once.
    Refuse,
    /// New connections are accepted and never answered (a silent network).
    Blackhole,
}

/// Each change bumps the generation: connections of an older one are dropped.
type State = (u64, Option<Cut>);

pub struct Proxy {
    pub addr: SocketAddr,
    state: watch::Sender<State>,
    accept: tokio::task::JoinHandle<()>,
}

impl Proxy {
    pub async fn start(upstream: SocketAddr) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("proxy binds");
        let addr = listener.local_addr().unwrap();
        let (state, states) = watch::channel((0, None));
        let accept = tokio::spawn(async move {
            while let Ok((client, _)) = listener.accept().await {
                tokio::spawn(serve(client, upstream, states.clone()));
            }
        });
        Self {
            addr,
            state,
            accept,
        }
    }

    /// Drops every live connection; new ones are refused or blackholed.
    pub fn cut(&self, how: Cut) {
        self.state.send_modify(|(generation, cut)| {
            *generation += 1;
            *cut = Some(how);
        });
    }

    /// Forwards new connections again (blackholed ones are dropped).
    pub fn restore(&self) {
        self.state.send_modify(|(generation, cut)| {
            *generation += 1;
            *cut = None;
        });
    }

    /// `url` (a PostgreSQL URL) with its host and port replaced by the proxy's.
    pub fn url_for(&self, url: &str) -> String {
        let mut url = url::Url::parse(url).expect("database URL");
        url.set_host(Some(&self.addr.ip().to_string())).unwrap();
        url.set_port(Some(self.addr.port())).unwrap();
        url.to_string()
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.accept.abort();
        self.cut(Cut::Refuse);
    }
}

async fn serve(mut client: TcpStream, upstream: SocketAddr, mut state: watch::Receiver<State>) {
    let (generation, cut) = *state.borrow_and_update();
    let changed = async move {
        let _ = state.wait_for(|(g, _)| *g != generation).await;
    };
    match cut {
        Some(Cut::Refuse) => {}
        Some(Cut::Blackhole) => changed.await,
        None => {
            let Ok(mut db) = TcpStream::connect(upstream).await else {
                return;
            };
            let _ = (client.set_nodelay(true), db.set_nodelay(true));
            tokio::select! {
                _ = tokio::io::copy_bidirectional(&mut client, &mut db) => {}
                _ = changed => {}
            }
        }
    }
}
