//! A TCP relay in front of the Authenticator's browser listener that records what passes: the
//! requests the browser sent and the listener's answers. The sign-in page is pointed at the
//! relay's port (`serve --browser-listener-port`), so a test can tell how many times the page
//! reached the listener, and with what result.
//!
//! Every connection from the browser gets its own connection to the listener, opened at once
//! and closed with it: the listener sees the browser's connections as they are (a connection
//! opened and held silent is held silent on the listener too).
use std::sync::{Arc, Mutex};

use anyhow::Result;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// The bytes one connection carried each way.
#[derive(Default)]
struct Carried {
    sent: Vec<u8>,
    answered: Vec<u8>,
}

pub struct ListenerTap {
    pub port: u16,
    connections: Arc<Mutex<Vec<Arc<Mutex<Carried>>>>>,
    task: tokio::task::JoinHandle<()>,
}

impl ListenerTap {
    /// Relays `127.0.0.1:<new port>` to the listener on `127.0.0.1:listener_port`.
    pub async fn start(listener_port: u16) -> Result<Self> {
        let socket = TcpListener::bind("127.0.0.1:0").await?;
        let port = socket.local_addr()?.port();
        let connections: Arc<Mutex<Vec<Arc<Mutex<Carried>>>>> = Arc::default();
        let record = connections.clone();
        let task = tokio::spawn(async move {
            // The relayed connections end with this task (the tap dropped).
            let mut relayed = tokio::task::JoinSet::new();
            while let Ok((browser, _)) = socket.accept().await {
                let carried = Arc::new(Mutex::new(Carried::default()));
                record.lock().unwrap().push(carried.clone());
                relayed.spawn(async move {
                    if let Ok(listener) = TcpStream::connect(("127.0.0.1", listener_port)).await {
                        relay(browser, listener, carried).await;
                    }
                });
            }
        });
        Ok(ListenerTap {
            port,
            connections,
            task,
        })
    }

    /// How many connections the browser opened.
    pub fn connections(&self) -> usize {
        self.connections.lock().unwrap().len()
    }

    /// The request lines the browser sent (`POST /v1/browser-binding`), in connection order.
    pub fn requests(&self) -> Vec<String> {
        self.lines(|c| &c.sent)
            .into_iter()
            .filter_map(|l| l.strip_suffix(" HTTP/1.1").map(str::to_owned))
            .collect()
    }

    /// The status lines the listener answered (`HTTP/1.1 204 No Content`), in connection order.
    pub fn answers(&self) -> Vec<String> {
        self.lines(|c| &c.answered)
            .into_iter()
            .filter(|l| l.starts_with("HTTP/1.1 "))
            .collect()
    }

    /// Every line carried one way (the bodies here, a challenge or nothing, hold no line
    /// breaks).
    fn lines(&self, way: impl Fn(&Carried) -> &Vec<u8>) -> Vec<String> {
        let mut lines = Vec::new();
        for carried in self.connections.lock().unwrap().iter() {
            let carried = carried.lock().unwrap();
            let text = String::from_utf8_lossy(way(&carried)).into_owned();
            lines.extend(text.split("\r\n").map(str::to_owned));
        }
        lines
    }
}

impl Drop for ListenerTap {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Copies both ways until either side ends, recording what passes.
async fn relay(browser: TcpStream, listener: TcpStream, carried: Arc<Mutex<Carried>>) {
    let (mut from_browser, mut to_browser) = browser.into_split();
    let (mut from_listener, mut to_listener) = listener.into_split();
    let up_record = carried.clone();
    let up = async move {
        let mut buf = [0u8; 4096];
        while let Ok(n @ 1..) = from_browser.read(&mut buf).await {
            up_record.lock().unwrap().sent.extend_from_slice(&buf[..n]);
            if to_listener.write_all(&buf[..n]).await.is_err() {
                break;
            }
        }
    };
    let down = async move {
        let mut buf = [0u8; 4096];
        while let Ok(n @ 1..) = from_listener.read(&mut buf).await {
            carried
                .lock()
                .unwrap()
                .answered
                .extend_from_slice(&buf[..n]);
            if to_browser.write_all(&buf[..n]).await.is_err() {
                break;
            }
        }
    };
    // Either side ending ends the connection, both ways (the listener closing a silent
    // connection closes the browser's).
    tokio::select! {
        _ = up => {}
        _ = down => {}
    }
}
