//! Human oversight in the data plane: the stop switches requests are checked against,
//! the requests held for a reviewer, and the items queued for review after the fact.
//! The state itself and its persistence are `rampart_oversight`'s; this module keeps
//! the copy requests read (one atomic load when nothing is stopped), keeps it in step
//! with the store, and writes the audit records of every operator action.
//!
//! Bounds (docs/OVERSIGHT.md): a stop set through this node's admin API holds here at
//! once and on every node sharing the PostgreSQL store within `sync_interval`; a
//! decision on a held request reaches the node holding it at once (same node) or
//! within `sync_interval`. A stop the store could not take holds on this node and is
//! written again every interval until the store takes it.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use arc_swap::ArcSwap;
use rampart_oversight::store::Store;
use rampart_oversight::{DecideError, Decision, Mode, ReviewItem, Scope, Status, Stop, Target};
use tokio::sync::{mpsc, oneshot, watch};

use crate::audit::AuditTrail;
use crate::error::{InitError, RequestError};

/// Why an exchange goes to reviewers, gathered by the stages that noticed (content
/// rules, injection bands, detectors): hold before the model, or review afterwards.
#[derive(Debug, Default)]
pub struct ReviewMark {
    pub hold: bool,
    pub after: bool,
    pub reasons: Vec<rampart_oversight::Reason>,
    /// The request as sent on, every detected value replaced by its kind's tag.
    pub preview: Option<String>,
}

/// A captured payload to seal into a review item (with the subject's key, so erasure
/// makes it unreadable like the audit record's copy).
type Capture = rampart_audit_store::payload::Capture;

/// Marks the exchange for review (the oversight stage acts on the mark).
pub fn mark(ex: &mut crate::context::Exchange, mode: Mode, kind: &str, score: f32) {
    if ex.stash.get::<ReviewMark>().is_none() {
        ex.stash.put(ReviewMark::default());
    }
    if let Some(m) = ex.stash.get_mut::<ReviewMark>() {
        match mode {
            Mode::Hold => m.hold = true,
            Mode::After => m.after = true,
        }
        match m.reasons.iter_mut().find(|r| r.kind == kind) {
            Some(r) => r.score = r.score.max(score),
            None => m.reasons.push(rampart_oversight::Reason {
                kind: kind.to_owned(),
                score,
            }),
        }
    }
}

/// A stop write the store has not taken yet.
#[derive(Debug, Clone)]
enum Pending {
    Set(Stop),
    Lift(Scope),
}

/// Settings that follow config reloads.
#[derive(Debug, Clone, Copy)]
struct HoldSettings {
    max_held: usize,
    timeout: Duration,
    allow_on_timeout: bool,
}

/// Who did something, for the audit record and the item.
#[derive(Debug, Clone)]
pub struct Actor {
    /// `subject` or `subject (key id)`.
    pub name: String,
    /// `admin_api` or `console`.
    pub via: &'static str,
}

/// How a held request ended.
#[derive(Debug)]
pub enum Held {
    /// A reviewer approved it (or the timeout rule lets it pass).
    Go,
    /// Refused: the error the client gets.
    Refuse(RequestError),
}

#[derive(Debug)]
pub struct Oversight {
    store: Arc<Store>,
    stops: ArcSwap<Vec<Stop>>,
    pending: Mutex<Vec<Pending>>,
    /// Bumped whenever the stops change; event streams watch it.
    generation: watch::Sender<u64>,
    node: Arc<str>,
    audit: Option<Arc<AuditTrail>>,
    waiters: Mutex<HashMap<String, oneshot::Sender<ReviewItem>>>,
    hold: ArcSwap<HoldSettings>,
    after: mpsc::Sender<(ReviewItem, Option<Capture>)>,
    sync_interval: Duration,
}

/// After-the-fact items waiting to be written (beyond it they are counted and dropped,
/// never blocking traffic).
const AFTER_QUEUE: usize = 1024;

fn now() -> i64 {
    rampart_identity::time::now()
}

impl Oversight {
    /// Opens the store and reads the stops in force, before anything is served.
    pub fn open(config: &rampart_config::Config, audit: Option<Arc<AuditTrail>>) -> Result<Arc<Self>, InitError> {
        let o = &config.oversight;
        let err = |reason: String| InitError::Oversight { reason };
        let store = match &o.store {
            rampart_config::OversightStore::Memory => {
                tracing::warn!(
                    "[oversight] keeps stop switches and the review queue in memory: they do not survive a restart (set `[oversight] path` or enable [audit])"
                );
                Store::memory(o.max_reviews)
            }
            rampart_config::OversightStore::File(path) => Store::file(path, o.max_reviews).map_err(err)?,
            rampart_config::OversightStore::Postgres(url) => Store::postgres(url.expose(), o.max_reviews),
        };
        let stops = store.stops_blocking().map_err(err)?;
        if !stops.is_empty() {
            let scopes: Vec<String> = stops.iter().map(|s| s.scope.to_string()).collect();
            tracing::warn!(stops = ?scopes, "stop switches in force from before the restart");
        }
        let (after_tx, after_rx) = mpsc::channel(AFTER_QUEUE);
        let this = Arc::new(Self {
            store: Arc::new(store),
            stops: ArcSwap::from_pointee(stops),
            pending: Mutex::new(Vec::new()),
            generation: watch::channel(0).0,
            node: Arc::from(config.server.node_id.as_str()),
            audit,
            waiters: Mutex::new(HashMap::new()),
            hold: ArcSwap::from_pointee(hold_settings(o)),
            after: after_tx,
            sync_interval: o.sync_interval,
        });
        #[allow(clippy::disallowed_methods)] // ends when the gateway is dropped (its sender)
        tokio::spawn(write_after(Arc::clone(&this.store), this.audit.clone(), after_rx));
        #[allow(clippy::disallowed_methods)] // ends when the gateway is dropped (weak handle)
        tokio::spawn(sync(Arc::downgrade(&this)));
        Ok(this)
    }

    /// A reload's new hold settings (the store is fixed at start).
    pub fn reconfigure(&self, config: &rampart_config::Config) {
        self.hold.store(Arc::new(hold_settings(&config.oversight)));
    }

    pub fn describe_store(&self) -> String {
        self.store.describe()
    }

    /// The stops in force.
    pub fn stops(&self) -> Arc<Vec<Stop>> {
        self.stops.load_full()
    }

    /// The refusal for a request that a stop covers, if any. One atomic load when
    /// nothing is stopped.
    pub fn refusal(&self, target: &Target<'_>) -> Option<RequestError> {
        let stops = self.stops.load();
        if stops.is_empty() {
            return None;
        }
        let now = now();
        let stop = stops.iter().find(|s| !s.expired(now) && s.covers(target))?;
        Some(match stop.scope {
            Scope::Principal(_) => RequestError::BlockedByReviewer,
            _ => RequestError::Stopped {
                retry_after: stop.until.map(|u| u64::try_from(u - now).unwrap_or(0).max(1)),
            },
        })
    }

    /// Resolves when a stop that ends streams in flight comes to cover `target`.
    pub fn cut_signal(self: &Arc<Self>, target: OwnedTarget) -> impl Future<Output = ()> + Send + 'static {
        let mut rx = self.generation.subscribe();
        let this = Arc::downgrade(self);
        async move {
            // Checked at once too: a stop set between the request's admission and this
            // subscription covers the stream all the same (any covering stop in force
            // now came after the request was let through).
            loop {
                let Some(o) = this.upgrade() else {
                    return std::future::pending().await;
                };
                let t = target.as_target();
                if o.stops.load().iter().any(|s| s.cut_streams && s.covers(&t)) {
                    return;
                }
                drop(o);
                if rx.changed().await.is_err() {
                    return std::future::pending().await;
                }
            }
        }
    }

    fn publish(&self, stops: Vec<Stop>) {
        self.stops.store(Arc::new(stops));
        self.generation.send_modify(|g| *g += 1);
    }

    fn apply_local(&self, change: &Pending) {
        let mut next: Vec<Stop> = self.stops.load().as_ref().clone();
        match change {
            Pending::Set(stop) => {
                next.retain(|s| s.scope != stop.scope);
                next.push(stop.clone());
            }
            Pending::Lift(scope) => next.retain(|s| &s.scope != scope),
        }
        next.sort_by(|a, b| a.scope.cmp(&b.scope));
        self.publish(next);
    }

    /// Sets a stop: in force on this node at once, written to the store. Returns
    /// whether the store took it (if not, it is written again every interval).
    pub async fn set_stop(&self, stop: Stop, actor: &Actor) -> bool {
        let change = Pending::Set(stop.clone());
        self.apply_local(&change);
        let stored = self.store.set_stop(stop.clone()).await;
        if let Err(e) = &stored {
            tracing::error!(error = %e, scope = %stop.scope, "stop holds on this node but the oversight store did not take it; retrying");
            self.queue(change);
        }
        self.record(
            "stop",
            actor,
            true,
            &stop.scope.to_string(),
            Some(format!(
                "{}{}{}",
                stop.reason,
                stop.until
                    .map(|u| format!("; planned end {}", rampart_identity::time::format(u)))
                    .unwrap_or_default(),
                if stop.cut_streams {
                    "; streams in flight cut"
                } else {
                    "; streams in flight left to finish"
                }
            )),
        );
        stored.is_ok()
    }

    /// Lifts the stop on `scope`. `Ok(None)`: there was none.
    pub async fn lift_stop(
        &self,
        scope: &Scope,
        actor: &Actor,
        reason: Option<String>,
    ) -> Result<Option<Stop>, String> {
        let had = self.stops.load().iter().find(|s| &s.scope == scope).cloned();
        let stored = self.store.lift_stop(scope, None).await;
        let lifted = match stored {
            Ok(s) => s.or(had),
            Err(e) => {
                if had.is_none() {
                    return Err(e);
                }
                tracing::error!(error = %e, scope = %scope, "stop lifted on this node but the oversight store did not take it; retrying");
                self.queue(Pending::Lift(scope.clone()));
                had
            }
        };
        if lifted.is_some() {
            self.apply_local(&Pending::Lift(scope.clone()));
            self.record("resume", actor, true, &scope.to_string(), reason);
        }
        Ok(lifted)
    }

    fn queue(&self, change: Pending) {
        let mut p = self.pending.lock().unwrap_or_else(|p| p.into_inner());
        p.push(change);
    }

    fn record(&self, action: &'static str, actor: &Actor, ok: bool, target: &str, reason: Option<String>) {
        if let Some(audit) = &self.audit {
            audit.oversight(action, actor.via, ok, &actor.name, target, reason);
        }
        tracing::info!(event = action, actor = %actor.name, via = actor.via, target = %target, "oversight action");
    }

    /// Holds a request until a reviewer decides, the timeout passes, or the queue is
    /// full (refused at once).
    pub async fn hold(&self, mut item: ReviewItem, capture: Option<Capture>) -> Held {
        let settings = **self.hold.load();
        if let Some(capture) = capture {
            seal(self.audit.as_ref(), &mut item, capture).await;
        }
        let id = item.id.clone();
        let rx = {
            let mut waiters = self.waiters.lock().unwrap_or_else(|p| p.into_inner());
            if waiters.len() >= settings.max_held {
                return Held::Refuse(RequestError::ReviewQueueFull);
            }
            let (tx, rx) = oneshot::channel();
            waiters.insert(id.clone(), tx);
            rx
        };
        // Frees the slot however this ends — the client may go away while it waits.
        let mut waiting = Waiting {
            o: self,
            id: id.clone(),
            queued: false,
            done: false,
        };
        if let Err(e) = self.store.add_review(item).await {
            tracing::error!(error = %e, "a request held for review could not be queued; refused");
            waiting.done = true;
            return Held::Refuse(RequestError::ReviewQueueFull);
        }
        waiting.queued = true;
        let decided = tokio::time::timeout(settings.timeout, rx).await;
        waiting.done = true;
        drop(waiting);
        let item = match decided {
            Ok(Ok(item)) => item,
            // Nobody decided in time: expire it, unless a decision won the race.
            _ => {
                let expiry = Decision {
                    status: Status::Expired,
                    by: "timeout".into(),
                    at: now(),
                    note: None,
                    block_principal: false,
                };
                match self.store.decide(&id, expiry).await {
                    Ok(item) => item,
                    Err(DecideError::AlreadyDecided(_)) => match self.store.review(&id).await {
                        Ok(Some(item)) => item,
                        _ => return Held::Refuse(RequestError::ReviewTimeout),
                    },
                    Err(_) => return Held::Refuse(RequestError::ReviewTimeout),
                }
            }
        };
        match item.status {
            Status::Approved => Held::Go,
            Status::Expired if settings.allow_on_timeout => Held::Go,
            Status::Expired => Held::Refuse(RequestError::ReviewTimeout),
            _ => Held::Refuse(RequestError::ReviewRejected),
        }
    }

    pub(crate) fn forget_waiter(&self, id: &str) {
        let mut waiters = self.waiters.lock().unwrap_or_else(|p| p.into_inner());
        waiters.remove(id);
    }

    /// Requests held on this node now.
    pub fn held(&self) -> usize {
        self.waiters.lock().unwrap_or_else(|p| p.into_inner()).len()
    }

    /// Queues an answered exchange for review after the fact (never blocks; counted
    /// and dropped when the writer is behind).
    pub fn after(&self, item: ReviewItem, capture: Option<Capture>) -> bool {
        self.after.try_send((item, capture)).is_ok()
    }

    /// A reviewer's decision: recorded, and delivered to the held request if this node
    /// holds it.
    pub async fn decide(&self, id: &str, decision: Decision, actor: &Actor) -> Result<ReviewItem, DecideError> {
        let result = self.store.decide(id, decision.clone()).await;
        if let Ok(item) = &result {
            let waiter = self.waiters.lock().unwrap_or_else(|p| p.into_inner()).remove(id);
            if let Some(tx) = waiter {
                let _ = tx.send(item.clone());
            }
            let mut reason = decision.note.clone().unwrap_or_default();
            if decision.block_principal
                && let Some(p) = &item.principal
            {
                reason.push_str(&format!("; caller {p} blocked"));
            }
            self.record(
                "review_decision",
                actor,
                true,
                &format!("review:{id} {} ({})", item.status.as_str(), mode_name(item.mode)),
                Some(reason).filter(|r| !r.is_empty()),
            );
        }
        result
    }

    pub async fn reviews(&self, status: Option<Status>, limit: usize) -> Result<Vec<ReviewItem>, String> {
        self.store.reviews(status, limit).await
    }

    pub async fn review(&self, id: &str) -> Result<Option<ReviewItem>, String> {
        self.store.review(id).await
    }

    /// Erasure: review previews of the subject (a pseudonym) are cleared.
    pub async fn forget_subject(&self, subject: &str) -> Result<u64, String> {
        self.store.forget_subject(subject).await
    }

    /// Opens a serious-incident record (the Art. 73 clock starts at `aware`).
    pub async fn open_incident(&self, incident: rampart_oversight::Incident, actor: &Actor) -> Result<(), String> {
        self.store.put_incident(incident.clone()).await?;
        self.record(
            "incident_opened",
            actor,
            true,
            &format!("incident:{}", incident.id),
            Some(incident_detail(&incident)),
        );
        Ok(())
    }

    /// Marks an incident reported to the authority or closed.
    pub async fn update_incident(
        &self,
        id: &str,
        reported: bool,
        closed: bool,
        actor: &Actor,
    ) -> Result<Option<rampart_oversight::Incident>, String> {
        let Some(mut incident) = self.store.incidents().await?.into_iter().find(|i| i.id == id) else {
            return Ok(None);
        };
        let now = now();
        if reported && incident.reported.is_none() {
            incident.reported = Some(now);
            self.store.put_incident(incident.clone()).await?;
            self.record(
                "incident_reported",
                actor,
                true,
                &format!("incident:{id}"),
                Some(incident_detail(&incident)),
            );
        }
        if closed && incident.closed.is_none() {
            incident.closed = Some(now);
            self.store.put_incident(incident.clone()).await?;
            self.record(
                "incident_closed",
                actor,
                true,
                &format!("incident:{id}"),
                Some(incident_detail(&incident)),
            );
        }
        Ok(Some(incident))
    }

    pub async fn incidents(&self) -> Result<Vec<rampart_oversight::Incident>, String> {
        self.store.incidents().await
    }

    pub fn store(&self) -> &Store {
        &self.store
    }

    pub fn node(&self) -> &str {
        &self.node
    }

    /// One sync round: pending writes, the shared stops, planned ends, decisions for
    /// requests held here.
    async fn sync_once(&self, round: u64) {
        let pending: Vec<Pending> = std::mem::take(&mut *self.pending.lock().unwrap_or_else(|p| p.into_inner()));
        let mut left = Vec::new();
        for (i, change) in pending.iter().enumerate() {
            let r = match change {
                Pending::Set(s) => self.store.set_stop(s.clone()).await,
                Pending::Lift(scope) => self.store.lift_stop(scope, None).await.map(|_| ()),
            };
            if r.is_err() {
                left.extend(pending[i..].iter().cloned());
                break;
            }
        }
        if self.store.shared() {
            if let Ok(mut stops) = self.store.stops().await {
                // What this node set but the store has not taken still holds here.
                for change in &left {
                    match change {
                        Pending::Set(stop) => {
                            stops.retain(|s| s.scope != stop.scope);
                            stops.push(stop.clone());
                        }
                        Pending::Lift(scope) => stops.retain(|s| &s.scope != scope),
                    }
                }
                stops.sort_by(|a, b| a.scope.cmp(&b.scope));
                if stops != **self.stops.load() {
                    self.publish(stops);
                }
            }
            let ids: Vec<String> = self
                .waiters
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .keys()
                .cloned()
                .collect();
            if let Ok(decided) = self.store.decided(&ids).await {
                let mut waiters = self.waiters.lock().unwrap_or_else(|p| p.into_inner());
                for item in decided {
                    if let Some(tx) = waiters.remove(&item.id) {
                        let _ = tx.send(item);
                    }
                }
            }
            if round.is_multiple_of(60)
                && let Err(e) = self.store.prune().await
            {
                tracing::warn!(error = %e, "review queue not pruned");
            }
        }
        {
            let mut p = self.pending.lock().unwrap_or_else(|p| p.into_inner());
            left.append(&mut p);
            *p = left;
        }
        // Planned ends: the node whose lift wins records it.
        let now = now();
        let expired: Vec<Stop> = self.stops.load().iter().filter(|s| s.expired(now)).cloned().collect();
        for stop in expired {
            if let Ok(Some(_)) = self.store.lift_stop(&stop.scope, Some(&stop)).await {
                self.record(
                    "resume",
                    &Actor {
                        name: "schedule".into(),
                        via: "schedule",
                    },
                    true,
                    &stop.scope.to_string(),
                    Some(format!("planned end of the stop set by {}", stop.by)),
                );
            }
            self.apply_local(&Pending::Lift(stop.scope.clone()));
        }
    }
}

/// What the audit record says of an incident; `rampart audit report` reads it back
/// (`key=value` pairs after the title, separated by `; `).
fn incident_detail(i: &rampart_oversight::Incident) -> String {
    let t = rampart_identity::time::format;
    let mut s = format!(
        "{}; severity={}; aware={}; due={}",
        i.title.replace(';', ","),
        i.severity.as_str(),
        t(i.aware),
        t(i.due())
    );
    if let Some(source) = &i.source {
        s.push_str(&format!("; source={}", source.replace(';', ",")));
    }
    if let Some(r) = i.reported {
        s.push_str(&format!("; reported={}", t(r)));
    }
    if let Some(c) = i.closed {
        s.push_str(&format!("; closed={}", t(c)));
    }
    s
}

/// A held request's place in the waiters: removed when the hold ends, however it ends.
/// A hold abandoned while queued (the client went away) is marked expired, so nobody
/// approves a request no one waits for.
struct Waiting<'a> {
    o: &'a Oversight,
    id: String,
    queued: bool,
    done: bool,
}

impl Drop for Waiting<'_> {
    fn drop(&mut self) {
        self.o.forget_waiter(&self.id);
        if self.done || !self.queued {
            return;
        }
        let store = Arc::clone(&self.o.store);
        let id = std::mem::take(&mut self.id);
        if let Ok(handle) = tokio::runtime::Handle::try_current() {
            #[allow(clippy::disallowed_methods)] // one bounded store write; ends by itself
            handle.spawn(async move {
                let gone = Decision {
                    status: Status::Expired,
                    by: "client_gone".into(),
                    at: now(),
                    note: Some("the client went away while the request was held".into()),
                    block_principal: false,
                };
                let _ = store.decide(&id, gone).await;
            });
        }
    }
}

fn mode_name(mode: Mode) -> &'static str {
    match mode {
        Mode::Hold => "held",
        Mode::After => "after the fact",
    }
}

fn hold_settings(o: &rampart_config::Oversight) -> HoldSettings {
    HoldSettings {
        max_held: o.max_held,
        timeout: o.hold_timeout,
        allow_on_timeout: o.on_timeout == rampart_config::raw::OnHoldTimeout::Allow,
    }
}

async fn sync(this: std::sync::Weak<Oversight>) {
    let Some(interval) = this.upgrade().map(|t| t.sync_interval) else {
        return;
    };
    let mut tick = tokio::time::interval(interval);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut round = 0u64;
    loop {
        tick.tick().await;
        let Some(this) = this.upgrade() else { return };
        this.sync_once(round).await;
        round += 1;
    }
}

/// Seals `capture` into the item under the subject's payload key (off the async
/// threads: the key may be read from disk or PostgreSQL).
async fn seal(audit: Option<&Arc<AuditTrail>>, item: &mut ReviewItem, capture: Capture) {
    let Some(keys) = audit.and_then(|a| a.keys.clone()) else {
        return;
    };
    let aad = rampart_audit_store::payload::payload_aad(&item.node, &item.request_id);
    let subject = capture.subject.clone();
    match tokio::task::spawn_blocking(move || keys.seal(capture, &aad)).await {
        Ok(Ok(sealed)) => {
            item.subject = Some(subject);
            item.sealed = serde_json::to_value(sealed).ok();
        }
        _ => tracing::error!("a review item's payload could not be sealed; it is kept without it"),
    }
}

async fn write_after(
    store: Arc<Store>,
    audit: Option<Arc<AuditTrail>>,
    mut rx: mpsc::Receiver<(ReviewItem, Option<Capture>)>,
) {
    while let Some((mut item, capture)) = rx.recv().await {
        if let Some(capture) = capture {
            seal(audit.as_ref(), &mut item, capture).await;
        }
        if let Err(e) = store.add_review(item).await {
            tracing::error!(error = %e, "an exchange queued for review could not be stored");
        }
    }
}

/// An exchange's place, owned (an event stream's cut signal outlives the borrow).
#[derive(Debug, Clone, Default)]
pub struct OwnedTarget {
    pub route: Option<String>,
    pub route_tenant: Option<String>,
    pub caller_tenant: Option<String>,
    pub model: Option<String>,
    pub principal: Option<String>,
}

impl OwnedTarget {
    pub fn as_target(&self) -> Target<'_> {
        Target {
            route: self.route.as_deref(),
            route_tenant: self.route_tenant.as_deref(),
            caller_tenant: self.caller_tenant.as_deref(),
            model: self.model.as_deref(),
            principal: self.principal.as_deref(),
        }
    }
}

/// Where the exchange stands, as stops see it.
pub fn target<'a>(ex: &'a crate::context::Exchange, route: &'a crate::route::RouteRuntime) -> Target<'a> {
    let principal = ex.principal.as_ref();
    Target {
        route: Some(&route.name),
        route_tenant: route.config.tenant.as_deref(),
        caller_tenant: principal.and_then(|p| p.tenant.as_deref()),
        model: ex.model.as_deref(),
        principal: principal.map(|p| p.subject.as_str()),
    }
}

/// What an event stream's cut signal watches.
pub fn owned_target(ex: &crate::context::Exchange, route: &crate::route::RouteRuntime) -> OwnedTarget {
    let t = target(ex, route);
    OwnedTarget {
        route: t.route.map(str::to_owned),
        route_tenant: t.route_tenant.map(str::to_owned),
        caller_tenant: t.caller_tenant.map(str::to_owned),
        model: t.model.map(str::to_owned),
        principal: t.principal.map(str::to_owned),
    }
}
