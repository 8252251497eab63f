//! A fake Kubernetes API server: the real HTTP API for the resources `lb` uses, in memory.
//!
//! No real API server can be installed where this project is tested, so `lb controller` and
//! `lb speaker` are tested end to end against this one, through a kubeconfig, with kube-rs
//! as the client, as they would run in a cluster. What it speaks:
//! - paths `/api/v1/...` and `/apis/GROUP/VERSION/...`, namespaced and cluster-scoped,
//!   collections across all namespaces, and the `/status` subresource;
//! - list (with `labelSelector`, `fieldSelector`, `limit` and `continue`), get, create
//!   (`generateName` too), replace, patch (JSON merge patch, strategic merge and server-side
//!   apply read as merge patches, JSON patch), delete;
//! - watch from a resourceVersion, with synthetic ADDED events when none is given,
//!   bookmarks, `timeoutSeconds`, DELETED when an object leaves a selector, and an ERROR
//!   event with 410 Gone when the version is older than the kept history;
//! - optimistic concurrency: a write naming a stale resourceVersion gets 409 Conflict; a
//!   write that changes nothing changes no version and wakes no watch;
//! - errors as `Status` objects with Kubernetes' reasons and codes;
//! - `metadata.managedFields`: each create, update and patch records an entry for its field
//!   manager (the `fieldManager` parameter, else the User-Agent up to its first `/`),
//!   operation (`Update`, or `Apply` for server-side apply) and subresource, with the fields
//!   the write set as `fieldsV1`; a client's own `managedFields` are not taken.
//!
//! Not spoken: authentication and authorization (every request is allowed), admission and
//! defaulting, validation against schemas, field ownership (apply is a merge, never a
//! conflict; an entry lists the fields of its manager's last write, not those it still
//! owns, and lists are leaves), strategic merge keys (lists are replaced), protobuf, and
//! anything not listed in
//! [`store::RESOURCES`] (404).
//!
//! For tests: `/fake/writes` returns counters of writes by verb and resource, and
//! `/fake/compact` drops the history so that older watches get 410 Gone.

pub mod patch;
pub mod store;

use std::convert::Infallible;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::combinators::BoxBody;
use http_body_util::{BodyExt, Full};
use hyper::body::{Body, Frame, Incoming};
use hyper::{Method, Request, Response, StatusCode};
use serde_json::{json, Value};
use tokio::sync::{broadcast, mpsc};

use store::{ApiError, Part, Store, RESOURCES};

type Reply = Response<BoxBody<Bytes, Infallible>>;

/// One request, as Kubernetes' authorizer sees it (for tests of RBAC rules).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Access {
    /// The bearer token of the request (the fake's stand-in for a user).
    pub user: String,
    /// `get`, `list`, `watch`, `create`, `update`, `patch` or `delete`.
    pub verb: &'static str,
    /// API group.
    pub group: &'static str,
    /// Resource, with `/status` for the subresource.
    pub resource: String,
    /// Namespace, for namespaced requests.
    pub namespace: Option<String>,
}

/// How many requests are remembered.
const ACCESS_LOG: usize = 100_000;

/// The server's shared state.
pub struct Shared {
    store: Mutex<Store>,
    accesses: Mutex<Vec<Access>>,
    outage: tokio::sync::watch::Sender<bool>,
}

impl Default for Shared {
    fn default() -> Self {
        Shared { store: Mutex::default(), accesses: Mutex::default(), outage: tokio::sync::watch::channel(false).0 }
    }
}

impl Shared {
    /// Makes the server unreachable (true) or reachable again (false). While unreachable,
    /// every open connection is cut (watches end mid-stream) and new ones are closed as soon
    /// as they are accepted, as after a crash of the API server or a network partition.
    pub fn set_outage(&self, down: bool) {
        self.outage.send_replace(down);
    }

    /// Every request served so far (the first 100,000).
    pub fn accesses(&self) -> Vec<Access> {
        self.accesses.lock().map(|a| a.clone()).unwrap_or_default()
    }

    fn record(&self, a: Access) {
        if let Ok(mut v) = self.accesses.lock() {
            if v.len() < ACCESS_LOG {
                v.push(a);
            }
        }
    }

    /// Runs `f` on the store (for tests that set up or inspect objects directly).
    pub fn with<R>(&self, f: impl FnOnce(&mut Store) -> R) -> R {
        let mut s = self.store.lock().unwrap_or_else(|p| p.into_inner());
        f(&mut s)
    }
}

/// A running fake API server.
pub struct FakeApi {
    /// Where it listens.
    pub addr: SocketAddr,
    /// Its state.
    pub shared: Arc<Shared>,
    handle: tokio::runtime::Handle,
}

impl FakeApi {
    /// Starts a server on `addr` (port 0: any free port) on the current tokio runtime.
    pub async fn start(addr: SocketAddr) -> std::io::Result<FakeApi> {
        let listener = tokio::net::TcpListener::bind(addr).await?;
        let addr = listener.local_addr()?;
        let shared = Arc::new(Shared::default());
        let state = shared.clone();
        tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else { continue };
                tokio::spawn(serve(state.clone(), stream));
            }
        });
        Ok(FakeApi { addr, shared, handle: tokio::runtime::Handle::current() })
    }

    /// Also serves the same API on a Unix socket at `path`: a test in another network
    /// namespace than the server reaches it there (sockets in the file system are not bound
    /// to a network namespace).
    pub fn serve_unix(&self, path: &std::path::Path) -> std::io::Result<()> {
        let _runtime = self.handle.enter();
        let listener = tokio::net::UnixListener::bind(path)?;
        let state = self.shared.clone();
        self.handle.spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else { continue };
                tokio::spawn(serve(state.clone(), stream));
            }
        });
        Ok(())
    }

    /// Starts a server on its own thread and runtime (for synchronous tests); it runs until
    /// the process ends.
    pub fn start_background() -> std::io::Result<FakeApi> {
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let rt = match tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build() {
                Ok(rt) => rt,
                Err(e) => return drop(tx.send(Err(e))),
            };
            rt.block_on(async move {
                let started = FakeApi::start(([127, 0, 0, 1], 0).into()).await;
                let ok = started.is_ok();
                let _ = tx.send(started);
                if ok {
                    std::future::pending::<()>().await;
                }
            });
        });
        rx.recv().map_err(|e| std::io::Error::other(e.to_string()))?
    }

    /// A kubeconfig that points at this server.
    pub fn kubeconfig(&self) -> String {
        self.kubeconfig_for("fake")
    }

    /// A kubeconfig whose requests carry `user` as their bearer token (see [`Access`]).
    pub fn kubeconfig_for(&self, user: &str) -> String {
        format!(
            "apiVersion: v1\nkind: Config\nclusters:\n- name: fake\n  cluster:\n    server: http://{}\n\
             users:\n- name: fake\n  user:\n    token: {user}\ncontexts:\n- name: fake\n  context:\n    cluster: fake\n    user: fake\n    namespace: default\n\
             current-context: fake\n",
            self.addr,
        )
    }
}

async fn serve<IO>(state: Arc<Shared>, stream: IO)
where
    IO: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let mut down = state.outage.subscribe();
    if *down.borrow() {
        return;
    }
    let svc = hyper::service::service_fn(move |req| handle(state.clone(), req));
    let io = hyper_util::rt::TokioIo::new(stream);
    tokio::select! {
        _ = hyper::server::conn::http1::Builder::new().serve_connection(io, svc) => {}
        _ = down.wait_for(|d| *d) => {}
    }
}

/// A response body fed by a channel (a watch).
struct ChannelBody(mpsc::Receiver<Bytes>);

impl Body for ChannelBody {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        self.0.poll_recv(cx).map(|b| b.map(|b| Ok(Frame::data(b))))
    }
}

fn reply(code: u16, body: &Value) -> Reply {
    let bytes = Bytes::from(body.to_string());
    Response::builder()
        .status(StatusCode::from_u16(code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR))
        .header("content-type", "application/json")
        .body(Full::new(bytes).boxed())
        .unwrap_or_else(|_| Response::new(Full::new(Bytes::new()).boxed()))
}

fn error(e: &ApiError) -> Reply {
    reply(e.code, &e.status())
}

/// A request's target.
#[derive(Debug)]
struct Route {
    res: usize,
    ns: Option<String>,
    name: Option<String>,
    part: Part,
}

fn route(path: &str) -> Option<Route> {
    let segs: Vec<&str> = path.split('/').filter(|s| !s.is_empty()).collect();
    let (group, version, rest) = match segs.as_slice() {
        ["api", v, rest @ ..] => ("", *v, rest),
        ["apis", g, v, rest @ ..] => (*g, *v, rest),
        _ => return None,
    };
    let find = |plural: &str, namespaced: bool| {
        RESOURCES
            .iter()
            .position(|r| r.group == group && r.version == version && r.plural == plural && r.namespaced == namespaced)
    };
    let part = |s: Option<&&str>| match s {
        None => Some(Part::Main),
        Some(&"status") => Some(Part::Status),
        Some(_) => None,
    };
    if let ["namespaces", ns, plural, more @ ..] = rest {
        if let Some(res) = find(plural, true) {
            if more.len() > 2 {
                return None;
            }
            return Some(Route {
                res,
                ns: Some(ns.to_string()),
                name: more.first().map(|s| s.to_string()),
                part: part(more.get(1))?,
            });
        }
    }
    let [plural, more @ ..] = rest else { return None };
    let res = find(plural, false).or_else(|| find(plural, true).filter(|_| more.is_empty()))?;
    if more.len() > 2 {
        return None;
    }
    Some(Route { res, ns: None, name: more.first().map(|s| s.to_string()), part: part(more.get(1))? })
}

fn decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        let hex =
            b.get(i + 1..i + 3).and_then(|h| std::str::from_utf8(h).ok()).and_then(|h| u8::from_str_radix(h, 16).ok());
        match (b[i], hex) {
            (b'+', _) => out.push(b' '),
            (b'%', Some(v)) => {
                out.push(v);
                i += 2;
            }
            (c, _) => out.push(c),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn query(req: &Request<Incoming>) -> Vec<(String, String)> {
    req.uri()
        .query()
        .unwrap_or_default()
        .split('&')
        .filter(|p| !p.is_empty())
        .map(|p| {
            let (k, v) = p.split_once('=').unwrap_or((p, ""));
            (decode(k), decode(v))
        })
        .collect()
}

/// A label or field selector: requirements that must all hold.
#[derive(Debug, Default, Clone)]
struct Selector(Vec<(String, String, Vec<String>)>); // (key, op, values)

impl Selector {
    fn parse(s: &str) -> Result<Selector, ApiError> {
        let mut reqs = Vec::new();
        let (mut depth, mut start) = (0, 0);
        let mut parts = Vec::new();
        for (i, c) in s.char_indices() {
            match c {
                '(' => depth += 1,
                ')' => depth -= 1,
                ',' if depth == 0 => {
                    parts.push(&s[start..i]);
                    start = i + 1;
                }
                _ => {}
            }
        }
        parts.push(&s[start..]);
        for p in parts.into_iter().map(str::trim).filter(|p| !p.is_empty()) {
            let bad = || ApiError::new(400, "BadRequest", format!("unable to parse requirement: {p:?}"));
            let set = |rest: &str| -> Result<Vec<String>, ApiError> {
                let inner = rest.trim().strip_prefix('(').and_then(|r| r.strip_suffix(')')).ok_or_else(bad)?;
                Ok(inner.split(',').map(|v| v.trim().to_string()).collect())
            };
            let req = if let Some((k, v)) = p.split_once("!=") {
                (k.trim().to_string(), "!=".to_string(), vec![v.trim().to_string()])
            } else if let Some((k, v)) = p.split_once("==").or_else(|| p.split_once('=')) {
                (k.trim().to_string(), "=".to_string(), vec![v.trim().to_string()])
            } else if let Some((k, rest)) = p.split_once(" notin ") {
                (k.trim().to_string(), "notin".to_string(), set(rest)?)
            } else if let Some((k, rest)) = p.split_once(" in ") {
                (k.trim().to_string(), "in".to_string(), set(rest)?)
            } else if let Some(k) = p.strip_prefix('!') {
                (k.trim().to_string(), "!exists".to_string(), vec![])
            } else {
                (p.to_string(), "exists".to_string(), vec![])
            };
            reqs.push(req);
        }
        Ok(Selector(reqs))
    }

    fn matches(&self, get: impl Fn(&str) -> Option<String>) -> bool {
        self.0.iter().all(|(k, op, vals)| {
            let v = get(k);
            match op.as_str() {
                "=" | "in" => v.is_some_and(|v| vals.contains(&v)),
                "!=" | "notin" => v.is_none_or(|v| !vals.contains(&v)),
                "exists" => v.is_some(),
                _ => v.is_none(),
            }
        })
    }
}

/// Which objects a list or watch returns.
#[derive(Debug, Default, Clone)]
struct Filter {
    ns: Option<String>,
    labels: Selector,
    fields: Selector,
}

impl Filter {
    fn matches(&self, obj: &Value) -> bool {
        let meta = &obj["metadata"];
        if let Some(ns) = &self.ns {
            if meta["namespace"].as_str() != Some(ns) {
                return false;
            }
        }
        let label = |k: &str| meta["labels"][k].as_str().map(str::to_string);
        let field = |path: &str| {
            let v = path.split('.').fold(obj, |v, p| &v[p]);
            match v {
                Value::Null => Some(String::new()),
                Value::String(s) => Some(s.clone()),
                other => Some(other.to_string()),
            }
        };
        self.labels.matches(label) && self.fields.matches(field)
    }
}

async fn handle(state: Arc<Shared>, req: Request<Incoming>) -> Result<Reply, Infallible> {
    let path = req.uri().path().to_string();
    let q = query(&req);
    let param = |k: &str| q.iter().find(|(n, _)| n == k).map(|(_, v)| v.clone());
    match (req.method(), path.as_str()) {
        (&Method::GET, "/healthz" | "/readyz" | "/livez") => {
            return Ok(Response::new(Full::new(Bytes::from_static(b"ok")).boxed()))
        }
        (&Method::GET, "/version") => {
            return Ok(reply(200, &json!({"major": "1", "minor": "33", "gitVersion": "v1.33.0-fake"})))
        }
        (&Method::GET, "/fake/writes") => return Ok(reply(200, &state.with(|s| s.writes()))),
        (&Method::POST, "/fake/compact") => {
            state.with(Store::compact);
            return Ok(reply(200, &json!({})));
        }
        _ => {}
    }
    let Some(r) = route(&path) else {
        return Ok(error(&ApiError::new(
            404,
            "NotFound",
            format!("the server could not find the requested resource ({path})"),
        )));
    };
    let method = req.method().clone();
    let user = req
        .headers()
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .unwrap_or_default()
        .to_string();
    let verb = match (&method, &r.name) {
        (&Method::GET, Some(_)) => "get",
        (&Method::GET, None) if matches!(param("watch").as_deref(), Some("true" | "1")) => "watch",
        (&Method::GET, None) => "list",
        (&Method::POST, _) => "create",
        (&Method::PUT, _) => "update",
        (&Method::PATCH, _) => "patch",
        (&Method::DELETE, _) => "delete",
        _ => "other",
    };
    let resource = RESOURCES[r.res];
    let sub = if r.part == Part::Status { "/status" } else { "" };
    state.record(Access {
        user,
        verb,
        group: resource.group,
        resource: format!("{}{sub}", resource.plural),
        namespace: r.ns.clone(),
    });
    let content_type = req.headers().get("content-type").and_then(|v| v.to_str().ok()).unwrap_or("").to_string();
    // The field manager recorded in managedFields: the fieldManager parameter, else the
    // client's User-Agent up to its first '/' (as the API server derives it).
    let manager = param("fieldManager").unwrap_or_else(|| {
        let agent = req.headers().get("user-agent").and_then(|v| v.to_str().ok()).unwrap_or("unknown");
        agent.split('/').next().unwrap_or("unknown").to_string()
    });
    let write = |f: &dyn Fn(&mut Store) -> Result<Value, ApiError>| {
        state.with(|s| {
            s.manager = Some(manager.clone());
            let r = f(s);
            s.manager = None;
            r
        })
    };
    let body = match req.into_body().collect().await {
        Ok(b) => b.to_bytes(),
        Err(_) => return Ok(error(&ApiError::new(400, "BadRequest", "cannot read the body"))),
    };
    let parse = || -> Result<Value, ApiError> {
        serde_json::from_slice(&body)
            .map_err(|e| ApiError::new(400, "BadRequest", format!("the body is not JSON: {e}")))
    };
    let ns = r.ns.clone().unwrap_or_default();
    let res = r.res;
    let result = match (&method, &r.name) {
        (&Method::GET, None) => {
            let filter = match (|| -> Result<Filter, ApiError> {
                Ok(Filter {
                    ns: r.ns.clone(),
                    labels: Selector::parse(&param("labelSelector").unwrap_or_default())?,
                    fields: Selector::parse(&param("fieldSelector").unwrap_or_default())?,
                })
            })() {
                Ok(f) => f,
                Err(e) => return Ok(error(&e)),
            };
            if matches!(param("watch").as_deref(), Some("true" | "1")) {
                return Ok(watch(&state, res, filter, &param));
            }
            Ok(list(&state, res, &filter, &param))
        }
        (&Method::GET, Some(name)) => state.with(|s| s.get(res, &ns, name)),
        (&Method::POST, None) if RESOURCES[res].namespaced && r.ns.is_none() => {
            Err(ApiError::new(405, "MethodNotAllowed", "create a namespaced object in its namespace"))
        }
        (&Method::POST, None) => {
            return Ok(match parse().and_then(|obj| write(&|s| s.create(res, &ns, obj.clone()))) {
                Ok(v) => reply(201, &v),
                Err(e) => error(&e),
            })
        }
        (&Method::PUT, Some(name)) => {
            parse().and_then(|obj| write(&|s| s.replace(res, &ns, name, r.part, obj.clone())))
        }
        (&Method::PATCH, Some(name)) => {
            if content_type.starts_with("application/apply-patch") && param("fieldManager").is_none() {
                Err(ApiError::new(400, "BadRequest", "PatchOptions.meta.k8s.io \"\" is invalid: fieldManager: Required value: is required for apply patch"))
            } else {
                parse().and_then(|p| write(&|s| s.patch(res, &ns, name, r.part, &content_type, &p)))
            }
        }
        (&Method::DELETE, Some(name)) => state.with(|s| s.delete(res, &ns, name)),
        _ => Err(ApiError::new(405, "MethodNotAllowed", format!("{method} is not supported here"))),
    };
    Ok(match result {
        Ok(v) => reply(200, &v),
        Err(e) => error(&e),
    })
}

fn list(state: &Shared, res: usize, filter: &Filter, param: &dyn Fn(&str) -> Option<String>) -> Value {
    let (items, rv) = state.with(|s| (s.list(res, filter.ns.as_deref()), s.version()));
    let items: Vec<Value> = items.into_iter().filter(|o| filter.matches(o)).collect();
    let limit = param("limit").and_then(|l| l.parse::<usize>().ok()).filter(|&l| l > 0);
    // continue = "<resourceVersion of the first page>/<offset>"
    let (list_rv, offset) = param("continue")
        .and_then(|c| c.split_once('/').and_then(|(a, b)| Some((a.parse::<u64>().ok()?, b.parse::<usize>().ok()?))))
        .unwrap_or((rv, 0));
    let end = limit.map_or(items.len(), |l| (offset + l).min(items.len()));
    let page: Vec<Value> = items.get(offset..end).map(<[Value]>::to_vec).unwrap_or_default();
    let r = RESOURCES[res];
    let mut meta = json!({ "resourceVersion": list_rv.to_string() });
    if end < items.len() {
        meta["continue"] = json!(format!("{list_rv}/{end}"));
        meta["remainingItemCount"] = json!(items.len() - end);
    }
    json!({ "kind": format!("{}List", r.kind), "apiVersion": r.api_version(), "metadata": meta, "items": page })
}

fn event_line(kind: &str, object: &Value) -> Bytes {
    let mut line = json!({ "type": kind, "object": object }).to_string();
    line.push('\n');
    Bytes::from(line)
}

fn watch(state: &Arc<Shared>, res: usize, filter: Filter, param: &dyn Fn(&str) -> Option<String>) -> Reply {
    let bookmarks = matches!(param("allowWatchBookmarks").as_deref(), Some("true" | "1"));
    let timeout = param("timeoutSeconds").and_then(|t| t.parse::<u64>().ok()).unwrap_or(1800);
    let since = param("resourceVersion").and_then(|v| v.parse::<u64>().ok()).filter(|&v| v > 0);
    let (tx, rx) = mpsc::channel::<Bytes>(1024);
    // Under one lock: what to replay, and the subscription for what follows (no gap).
    let (initial, mut sub, start) = state.with(|s| {
        let initial: Option<Vec<store::Change>> = match since {
            None => Some(
                s.list(res, filter.ns.as_deref())
                    .into_iter()
                    .map(|object| store::Change { res, rv: 0, kind: "ADDED", object, old: None })
                    .collect(),
            ),
            Some(v) => s.changes_since(res, v),
        };
        (initial, s.subscribe(), s.version())
    });
    let r = RESOURCES[res];
    let gone = move |rv: u64| {
        let status = ApiError::new(410, "Expired", format!("too old resource version: {rv}")).status();
        event_line("ERROR", &status)
    };
    tokio::spawn(async move {
        let Some(initial) = initial else {
            let _ = tx.send(gone(since.unwrap_or_default())).await;
            return;
        };
        let mut last = start;
        let deadline = tokio::time::sleep(Duration::from_secs(timeout));
        tokio::pin!(deadline);
        let mut tick = tokio::time::interval(Duration::from_secs(1));
        tick.tick().await;
        let mut pending = initial;
        loop {
            for c in pending.drain(..) {
                // A selector watch sees an object enter (ADDED) or leave (DELETED) it.
                let was = c.old.as_ref().is_some_and(|o| filter.matches(o));
                let now = filter.matches(&c.object);
                let send = match (c.kind, was, now) {
                    ("DELETED", _, true) => Some("DELETED"),
                    ("MODIFIED", true, true) => Some("MODIFIED"),
                    ("MODIFIED", true, false) => Some("DELETED"),
                    (_, _, true) => Some("ADDED"),
                    _ => None,
                };
                let obj =
                    if send == Some("DELETED") && c.kind == "MODIFIED" { c.old.as_ref() } else { Some(&c.object) };
                if let (Some(t), Some(obj)) = (send, obj) {
                    if tx.send(event_line(t, obj)).await.is_err() {
                        return;
                    }
                }
            }
            tokio::select! {
                _ = &mut deadline => return,
                _ = tick.tick(), if bookmarks => {
                    let b = json!({"kind": r.kind, "apiVersion": r.api_version(), "metadata": {"resourceVersion": last.to_string()}});
                    if tx.send(event_line("BOOKMARK", &b)).await.is_err() {
                        return;
                    }
                }
                c = sub.recv() => match c {
                    Ok(c) => {
                        last = last.max(c.rv);
                        if c.res == res && c.rv > start {
                            pending.push(c);
                        }
                    }
                    Err(broadcast::error::RecvError::Lagged(_)) => {
                        let _ = tx.send(gone(last)).await;
                        return;
                    }
                    Err(broadcast::error::RecvError::Closed) => return,
                },
            }
        }
    });
    Response::builder()
        .status(StatusCode::OK)
        .header("content-type", "application/json")
        .body(BodyExt::boxed(ChannelBody(rx)))
        .unwrap_or_else(|_| Response::new(Full::new(Bytes::new()).boxed()))
}
