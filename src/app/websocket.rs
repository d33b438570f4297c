//! The GraphQL WebSocket (graphql-transport-ws and the older
//! subscriptions-transport-ws): the handshake, authentication from
//! `connection_init`, and the serving loop that closes every socket with 1001
//! at shutdown once the last events are sent.

use std::str::FromStr;

use async_graphql::{
    Data,
    http::{ALL_WEBSOCKET_PROTOCOLS, WebSocketProtocols, WsMessage},
};
use async_graphql_axum::GraphQLProtocol;
use axum::{
    extract::{
        State, WebSocketUpgrade,
        ws::{CloseFrame, Message, WebSocket},
    },
    http::{HeaderMap, header},
    response::Response,
};
use futures_util::{SinkExt, StreamExt, stream::SplitSink};
use serde_json::{Value, json};
use tracing::Instrument;

use super::AppState;
use crate::{budget::SessionCaller, error::AppError};

pub(super) async fn graphql_ws(
    State(state): State<AppState>,
    headers: HeaderMap,
    // Refuses a handshake that offers no protocol we speak.
    _offered: GraphQLProtocol,
    upgrade: WebSocketUpgrade,
) -> Response {
    // The same choice GraphQLProtocol made: the first protocol offered that we speak.
    let protocol = headers
        .get(header::SEC_WEBSOCKET_PROTOCOL)
        .and_then(|v| v.to_str().ok())
        .and_then(|list| {
            list.split(',')
                .find_map(|p| WebSocketProtocols::from_str(p.trim()).ok())
        })
        .unwrap_or(WebSocketProtocols::GraphQLWS);
    let span = tracing::Span::current();
    // Subscription traffic is small messages: tungstenite's default 128 KiB
    // read and write buffers per connection would cost ~150 KB of memory per
    // subscriber (1.5 GB for 10,000). The read buffer is allocated up front
    // for every connection (heaptrack: the largest item per subscriber at
    // 4 KiB); 1 KiB holds a subscribe message, and a larger message is read
    // in several calls into a buffer that grows to fit it.
    upgrade
        .read_buffer_size(1024)
        .write_buffer_size(4 * 1024)
        .protocols(ALL_WEBSOCKET_PROTOCOLS)
        .on_upgrade(move |socket| serve_ws(state, socket, protocol).instrument(span))
}

async fn close(sink: &mut SplitSink<WebSocket, Message>, code: u16, reason: &str) {
    let _ = sink
        .send(Message::Close(Some(CloseFrame {
            code,
            reason: reason.into(),
        })))
        .await;
    let _ = sink.close().await;
}

/// The token of a `connection_init` payload: `Authorization`/`authorization`
/// (with or without `Bearer `), or `token`/`authToken`.
fn init_token(payload: &Value) -> Option<String> {
    let raw = ["Authorization", "authorization", "token", "authToken"]
        .iter()
        .find_map(|k| payload.get(k).and_then(Value::as_str))
        .or_else(|| {
            payload
                .get("headers")
                .and_then(|h| h.get("Authorization").or_else(|| h.get("authorization")))
                .and_then(Value::as_str)
        })?;
    let token = raw
        .strip_prefix("Bearer ")
        .or_else(|| raw.strip_prefix("bearer "))
        .unwrap_or(raw)
        .trim();
    (!token.is_empty()).then(|| token.to_owned())
}

/// Authenticates a WebSocket from its `connection_init` message (4408 when none
/// comes in time, 4403 for a bad token, 1013 when the database is
/// unavailable), then serves it with async-graphql until either side closes
/// or the server shuts down.
async fn serve_ws(state: AppState, socket: WebSocket, protocol: WebSocketProtocols) {
    let _open = state.metrics.is_some().then(OpenConnection::new);
    let legacy = protocol == WebSocketProtocols::SubscriptionsTransportWS;
    let (mut sink, mut stream) = socket.split();
    let wait = state.config.http.ws_init_timeout;
    let first = tokio::time::timeout(wait, async {
        while let Some(Ok(msg)) = stream.next().await {
            match msg {
                Message::Text(_) | Message::Binary(_) => return Some(msg),
                Message::Close(_) => return None,
                _ => {}
            }
        }
        None
    })
    .await;
    let first = match first {
        Err(_) => return close(&mut sink, 4408, "Connection initialisation timeout").await,
        Ok(None) => return,
        Ok(Some(msg)) => msg,
    };
    let parsed: Option<Value> = match &first {
        Message::Text(t) => serde_json::from_str(t.as_str()).ok(),
        Message::Binary(b) => serde_json::from_slice(b).ok(),
        _ => None,
    };
    let Some(parsed) = parsed else {
        return close(&mut sink, 4400, "Invalid message").await;
    };
    if parsed.get("type").and_then(Value::as_str) != Some("connection_init") {
        return close(&mut sink, 4401, "Unauthorized").await;
    }
    let payload = parsed.get("payload").cloned().unwrap_or(Value::Null);
    let principal = match init_token(&payload) {
        None => Err(AppError::Unauthenticated(
            "connection_init carries no token".into(),
        )),
        Some(token) => state.authenticate(&token).await,
    };
    let principal = match principal {
        Ok(p) => p,
        Err(e) if e.is_unavailable() => {
            let _ = async_graphql::Error::from(e); // logs it
            if legacy {
                let msg = json!({ "type": "connection_error", "payload": { "message": "Service unavailable; retry later" } });
                let _ = sink.send(Message::Text(msg.to_string().into())).await;
            }
            return close(&mut sink, 1013, "Try again later").await;
        }
        Err(e) => {
            tracing::info!(reason = %e.message(), "WebSocket refused");
            if legacy {
                // The older protocol reports errors in a message before closing.
                let msg =
                    json!({ "type": "connection_error", "payload": { "message": "Forbidden" } });
                let _ = sink.send(Message::Text(msg.to_string().into())).await;
            }
            return close(&mut sink, 4403, "Forbidden").await;
        }
    };
    // Replay the init message so async-graphql acknowledges it as usual.
    let input = futures_util::stream::once(async move { Ok(first) })
        .chain(stream)
        .take_while(|m| futures_util::future::ready(m.is_ok()))
        .filter_map(|m| {
            futures_util::future::ready(match m {
                Ok(m @ (Message::Text(_) | Message::Binary(_))) => Some(m.into_data()),
                _ => None,
            })
        });
    let budget = state.budget.clone();
    let outgoing = async_graphql::http::WebSocket::new(state.schema.clone(), input, protocol)
        .on_connection_init(move |_| async move {
            let mut data = Data::default();
            data.insert(SessionCaller {
                principal: principal.clone(),
                budget,
            });
            data.insert(principal);
            Ok(data)
        });
    let mut outgoing = std::pin::pin!(outgoing);
    let mut closing = state.ws_closing.subscribe();
    loop {
        let message = tokio::select! {
            m = outgoing.next() => m,
            _ = async { let _ = closing.wait_for(|c| *c).await; } => {
                // Shutdown: every event published before it has been sent.
                return close(&mut sink, 1001, "Server shutting down").await;
            }
        };
        let message = match message {
            None => return,
            Some(WsMessage::Text(text)) => {
                // At shutdown the subscriptions' streams end; a `complete`
                // would tell the client the subscription is over, when it
                // should subscribe again once reconnected.
                if state.events.is_closing() && is_complete(&text) {
                    continue;
                }
                Message::Text(text.into())
            }
            Some(WsMessage::Close(code, reason)) => Message::Close(Some(CloseFrame {
                code,
                reason: reason.into(),
            })),
        };
        if sink.send(message).await.is_err() {
            return;
        }
    }
}

/// Counts an open WebSocket in the metrics while it lives.
struct OpenConnection;

impl OpenConnection {
    fn new() -> Self {
        metrics::gauge!(super::metrics::WS_CONNECTIONS).increment(1.0);
        Self
    }
}

impl Drop for OpenConnection {
    fn drop(&mut self) {
        metrics::gauge!(super::metrics::WS_CONNECTIONS).decrement(1.0);
    }
}

fn is_complete(message: &str) -> bool {
    serde_json::from_str::<Value>(message)
        .is_ok_and(|v| v.get("type").and_then(Value::as_str) == Some("complete"))
}
