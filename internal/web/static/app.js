// The audit-stream dashboard: a live table over /stream and an in-browser
// check of any event against the signed checkpoint.
import { parse, pretty, eventBody, field, lookup } from "./canon.js";
import {
  hasWebCrypto, hashText, fromHex, leafHash, rootFromInclusion,
  parseVerifierKey, openNote, parseCheckpoint, equal, toHex,
} from "./proof.js";

const base = new URL("../", location.href); // the API root, also behind a path prefix
const maxRows = 1000;
const zeroHash = "0".repeat(64);
const tokenKey = "audit-stream-token";
const pinKey = "audit-stream-pinned-key:" + base.href;

const $ = (id) => document.getElementById(id);

const state = {
  token: sessionStorage.getItem(tokenKey) || "",
  kinds: [],
  filter: { kind: "", source: "" },
  live: [], // newest first: {id, ev}
  byId: new Map(),
  lastId: 0, // the last id taken from the stream: later frames only
  es: null,
  reopenTimer: 0,
  backoff: 1000,
  paused: false,
  searching: false,
  queued: [], // frames held while paused or searching
  pending: [], // frames waiting for the next paint
  arrivals: [], // arrival times, for events/s
  selected: null,
  checkpoint: { size: -1, changedAt: 0, loadedAt: Date.now() },
  generation: 0, // bumped on every reload, so stale answers are dropped
};

// ---- API access ---------------------------------------------------------

class APIError extends Error {
  constructor(status, detail) {
    super(detail);
    this.status = status;
  }
}

async function api(path, { as = "json", params } = {}) {
  const url = new URL(path, base);
  if (params) url.search = params.toString();
  const headers = {};
  if (state.token) headers.Authorization = "Bearer " + state.token;
  const resp = await fetch(url, { headers, cache: "no-store" });
  if (!resp.ok) {
    let detail = `${resp.status} ${resp.statusText}`;
    try {
      const p = await resp.json();
      if (p.detail) detail = p.detail;
    } catch {}
    if (resp.status === 401) askToken(detail);
    throw new APIError(resp.status, detail);
  }
  if (as === "text") return resp.text();
  if (as === "blob") return resp.blob();
  return resp.json();
}

function showMessage(text) {
  const m = $("message");
  m.textContent = text;
  m.hidden = !text;
}

function askToken(detail) {
  showMessage(`Authentication needed: ${detail}`);
  // Focus the field once, not on every refused background refresh.
  if ($("auth").hidden || !state.askedToken) {
    $("auth").hidden = false;
    state.askedToken = true;
    $("token").focus();
  }
}

// ---- the table ----------------------------------------------------------

function fmtTime(ts) {
  const d = new Date(ts);
  if (isNaN(d)) return ts;
  return d.toLocaleString(undefined, { hour12: false }) + "." + String(d.getMilliseconds()).padStart(3, "0");
}

function rowFor(item, fresh) {
  const ev = item.ev;
  const tr = document.createElement("tr");
  tr.dataset.id = item.id;
  tr.dataset.kind = field(ev, "kind");
  tr.dataset.source = field(ev, "source");
  tr.tabIndex = 0;
  if (fresh) tr.className = "new";
  if (state.selected === item.id) tr.setAttribute("aria-selected", "true");
  const payload = ev.keys.get("payload");
  const cells = [
    [String(item.id), "num"],
    [fmtTime(field(ev, "timestamp")), ""],
    [field(ev, "kind"), ""],
    [field(ev, "source"), ""],
    [payload ? pretty(payload).replace(/\s*\n\s*/g, " ") : "", "payload"],
  ];
  for (const [text, cls] of cells) {
    const td = document.createElement("td");
    td.textContent = text;
    if (cls) td.className = cls;
    tr.append(td);
  }
  return tr;
}

function renderAll(items) {
  const frag = document.createDocumentFragment();
  for (const item of items) frag.append(rowFor(item, false));
  $("rows").replaceChildren(frag);
}

function remember(item) {
  state.byId.set(item.id, item.ev);
  if (state.byId.size > maxRows * 2) {
    const oldest = state.byId.keys().next().value;
    state.byId.delete(oldest);
  }
}

// paint prepends the frames that arrived since the last frame.
function paint() {
  const items = state.pending;
  state.pending = [];
  if (items.length === 0) return;
  const frag = document.createDocumentFragment();
  for (let i = items.length - 1; i >= 0; i--) frag.append(rowFor(items[i], true));
  const tbody = $("rows");
  tbody.prepend(frag);
  while (tbody.rows.length > maxRows) tbody.lastElementChild.remove();
}

function addLive(items) {
  // items are oldest first
  for (const item of items) {
    state.live.unshift(item);
    remember(item);
  }
  if (state.live.length > maxRows) state.live.length = maxRows;
  const painting = state.pending.length > 0;
  state.pending.push(...items);
  if (!painting) requestAnimationFrame(paint);
}

// ---- the live stream ----------------------------------------------------

function setConn(s, text = s) {
  const el = $("st-conn");
  el.dataset.state = s;
  el.textContent = text;
}

function onFrame(e) {
  const id = Number(e.lastEventId);
  // A reopened stream may replay from its original position: keep each id once.
  if (!(id > state.lastId)) return;
  state.lastId = id;
  state.backoff = 1000;
  state.arrivals.push(performance.now());
  let ev;
  try {
    ev = parse(e.data);
  } catch (err) {
    showMessage(`event ${id}: unreadable JSON: ${err.message}`);
    return;
  }
  const item = { id, ev };
  if (state.paused || state.searching || state.loading) {
    state.queued.push(item);
    updateMode();
  } else addLive([item]);
  noteHead(id, field(ev, "hash"));
}

function closeStream() {
  clearTimeout(state.reopenTimer);
  if (state.es) state.es.close();
  state.es = null;
}

// openStream subscribes from after (an event id), or from the head when
// after is null, and resolves once the stream is open (false if it was
// refused first). The first stream of a reload has no after, so that
// through network blips EventSource itself reconnects with Last-Event-ID
// and resumes exactly (an ?after= in the URL would win over the header).
// When the server refuses (503 while it restarts, 401) EventSource gives
// up; we then reopen from the last id we hold.
function openStream(after) {
  closeStream();
  const q = new URLSearchParams();
  if (state.filter.kind) q.set("kind", state.filter.kind);
  if (state.filter.source) q.set("source", state.filter.source);
  if (after != null) q.set("after", String(after));
  // EventSource cannot send headers: the token rides in the URL, for this
  // route only.
  if (state.token) q.set("access_token", state.token);
  const es = new EventSource(new URL("stream?" + q, base));
  state.es = es;
  for (const k of state.kinds) es.addEventListener(k, onFrame);
  es.addEventListener("message", onFrame);
  return new Promise((resolve) => {
    es.onopen = () => {
      setConn(state.paused ? "paused" : "live");
      resolve(true);
    };
    es.onerror = () => {
      if (es.readyState !== EventSource.CLOSED) {
        setConn("reconnecting");
        return;
      }
      resolve(false);
      setConn("disconnected", "disconnected, retrying");
      state.reopenTimer = setTimeout(async () => {
        // A refusal may be a missing token: ask rather than loop.
        try {
          await api("stats");
        } catch (err) {
          if (err.status === 401 || err.status === 403) return;
        }
        openStream(state.lastId);
      }, state.backoff);
      state.backoff = Math.min(state.backoff * 2, 30000);
    };
  });
}

// reload starts over with the current filters: the live stream from the
// head, then the newest events from the query API up to where the stream
// began; an event in both shows once.
async function reload() {
  const gen = ++state.generation;
  closeStream();
  state.loading = true;
  state.live = [];
  state.queued = [];
  state.pending = [];
  state.lastId = 0;
  $("rows").replaceChildren();
  showMessage("");
  try {
    const q = filterParams();
    // The query rejects a bad filter (or a missing token) with its reason
    // before a stream is opened with it.
    q.set("limit", "1");
    await api("events", { params: q });
    if (gen !== state.generation) return;
    await openStream(null);
    q.set("limit", "200");
    const text = await api("events", { params: q, as: "text" });
    if (gen !== state.generation) return;
    const history = parse(text).items.map((ev) => ({ id: Number(field(ev, "event_id")), ev }));
    const seen = new Set(history.map((it) => it.id));
    // Frames that arrived meanwhile and are also in the history show once.
    state.queued = state.queued.filter((it) => !seen.has(it.id));
    for (const it of history) state.lastId = Math.max(state.lastId, it.id);
    state.live = history.reverse();
    state.live.forEach(remember);
    renderAll(state.live);
  } catch (err) {
    if (gen === state.generation) showMessage(`Could not load events: ${err.message}`);
  } finally {
    if (gen === state.generation) {
      state.loading = false;
      if (!state.paused && !state.searching) flushQueue();
    }
  }
}

function filterParams() {
  const q = new URLSearchParams();
  if (state.filter.kind) q.set("kind", state.filter.kind);
  if (state.filter.source) q.set("source", state.filter.source);
  return q;
}

function flushQueue() {
  const q = state.queued;
  state.queued = [];
  if (q.length) addLive(q);
  updateMode();
}

function updateMode() {
  const n = state.queued.length;
  let text = "Live: newest on top.";
  if (state.searching) text = `Search results. ${n} new live event${n === 1 ? "" : "s"} held.`;
  else if (state.paused) text = `Paused: ${n} new event${n === 1 ? "" : "s"} held.`;
  if (state.filter.kind || state.filter.source) {
    text += ` Filtered: ${[state.filter.kind && "kind " + state.filter.kind, state.filter.source && "source " + state.filter.source].filter(Boolean).join(", ")}.`;
  }
  $("mode").textContent = text;
  $("pause").textContent = state.paused ? `Resume${n ? ` (${n})` : ""}` : "Pause";
}

// ---- status strip -------------------------------------------------------

function noteHead(id, hash) {
  const cur = Number($("st-head").dataset.id || 0);
  if (id < cur) return;
  $("st-head").dataset.id = id;
  $("st-head").textContent = "#" + id;
  $("st-hash").textContent = hash ? hash.slice(0, 16) + "…" : "";
  $("st-hash").title = hash || "";
  if (!state.filter.kind && !state.filter.source) $("st-count").textContent = id.toLocaleString();
}

async function refreshStatus() {
  try {
    const s = await api("stats");
    $("st-count").textContent = s.count.toLocaleString();
    noteHead(s.last_event_id, s.latest_hash);
  } catch {}
  try {
    const text = await api("checkpoint", { as: "text" });
    const size = Number(text.split("\n")[1]);
    const cp = state.checkpoint;
    if (size !== cp.size) {
      if (cp.size >= 0) cp.changedAt = Date.now();
      cp.size = size;
    }
    renderCheckpoint();
  } catch (err) {
    $("st-checkpoint").textContent = err.status === 503 ? "not signed by this server" : "–";
  }
}

function ago(ms) {
  const s = Math.round(ms / 1000);
  return s < 90 ? `${s} s` : s < 5400 ? `${Math.round(s / 60)} min` : `${Math.round(s / 3600)} h`;
}

function renderCheckpoint() {
  const cp = state.checkpoint;
  if (cp.size < 0) return;
  const age = cp.changedAt
    ? `signed ${ago(Date.now() - cp.changedAt)} ago`
    : `unchanged for ${ago(Date.now() - cp.loadedAt)}`;
  $("st-checkpoint").textContent = `${cp.size.toLocaleString()} events, ${age}`;
}

function tickRate() {
  const now = performance.now();
  const a = state.arrivals;
  while (a.length && a[0] < now - 5000) a.shift();
  $("st-rate").textContent = (a.length / 5).toFixed(a.length < 50 ? 1 : 0);
  renderCheckpoint();
}

async function runVerify() {
  const el = $("st-verify");
  const btn = $("run-verify");
  btn.disabled = true;
  el.dataset.state = "";
  el.textContent = "running…";
  const started = new Date();
  try {
    const r = await api("verify");
    const at = started.toLocaleTimeString(undefined, { hour12: false });
    if (r.valid) {
      el.dataset.state = "ok";
      el.textContent = `valid, ${r.checked.toLocaleString()} checked at ${at}`;
    } else {
      el.dataset.state = "bad";
      el.textContent = `BROKEN at event ${r.first_break_at}: ${r.reason} (at ${at})`;
    }
  } catch (err) {
    el.dataset.state = "bad";
    el.textContent = `failed: ${err.message}`;
  } finally {
    btn.disabled = false;
  }
}

// ---- the in-browser check -----------------------------------------------

class CheckFailed extends Error {}

async function getEvent(id) {
  if (state.byId.has(id)) return state.byId.get(id);
  const text = await api(`events/${id}`, { as: "text" });
  return parse(text);
}

async function verifiedCheckpoint(step, needSize) {
  const vkey = (await api("checkpoint/key", { as: "text" })).trim();
  const key = await parseVerifierKey(vkey);
  const pinned = localStorage.getItem(pinKey);
  if (pinned && pinned !== key.text) {
    throw new CheckFailed(`the server's checkpoint key ${key.text} differs from the key pinned in this browser (${pinned})`);
  }
  if (!pinned) localStorage.setItem(pinKey, key.text);
  // An event newer than the latest checkpoint waits for the next one.
  const deadline = Date.now() + 6000;
  for (;;) {
    const signed = await api("checkpoint", { as: "text" });
    const cp = parseCheckpoint(await openNote(signed, key).catch((e) => {
      throw new CheckFailed(e.message);
    }));
    if (cp.size >= needSize) {
      step("ok", `checkpoint of ${cp.size.toLocaleString()} events signed by ${key.name} (key ${pinned ? "pinned in this browser" : "now pinned in this browser, on first use"})`);
      return cp;
    }
    if (Date.now() > deadline) {
      return null;
    }
    await new Promise((r) => setTimeout(r, 500));
  }
}

async function check(ev) {
  const steps = [];
  const step = (st, text) => {
    steps.push([st, text]);
    const li = document.createElement("li");
    li.dataset.state = st;
    li.textContent = text;
    $("steps").append(li);
  };
  if (!hasWebCrypto()) {
    throw new CheckFailed("this page is not a secure context (HTTPS or localhost), so the browser offers no WebCrypto to check with");
  }
  const id = Number(field(ev, "event_id"));
  const claimed = field(ev, "hash");
  const prev = field(ev, "prev_hash");

  // 1. The hash: re-serialise the body canonically and hash it.
  const got = await hashText(eventBody(ev));
  if (got !== claimed) {
    step("bad", `hash mismatch: the canonical body hashes to ${got}, the event says ${claimed}`);
    throw new CheckFailed(`hash mismatch: event ${id}'s contents do not hash to its hash (recomputed ${got.slice(0, 12)}…, stored ${claimed.slice(0, 12)}…): it was changed after it was written`);
  }
  step("ok", `SHA-256 of the canonical body matches hash ${claimed.slice(0, 16)}…`);

  // 2. The link to the previous event.
  if (id === 1) {
    if (prev !== zeroHash) throw new CheckFailed("chain break: event 1's prev_hash is not the zero hash");
    step("ok", "first event: prev_hash is the zero hash");
  } else {
    const before = await getEvent(id - 1);
    const want = field(before, "hash");
    if (want !== prev) {
      step("bad", `prev_hash ${prev} ≠ event ${id - 1}'s hash ${want}`);
      throw new CheckFailed(`chain break: prev_hash does not match event ${id - 1}'s hash`);
    }
    step("ok", `prev_hash matches event ${id - 1}'s hash`);
  }

  // 3. The inclusion proof against the signed checkpoint.
  const cp = await verifiedCheckpoint(step, id);
  if (!cp) return { partial: `not yet covered by a signed checkpoint: hash and link verified` };
  const proof = await api(`events/${id}/proof`, { params: new URLSearchParams({ tree_size: String(cp.size) }) });
  const root = await rootFromInclusion(id - 1, cp.size, await leafHash(fromHex(claimed)), proof.proof.map(fromHex));
  if (!equal(root, cp.root)) {
    step("bad", `the inclusion proof leads to root ${toHex(root)}, the signed checkpoint has ${toHex(cp.root)}`);
    throw new CheckFailed(`not in the signed log: event ${id}'s inclusion proof does not lead to the signed checkpoint root`);
  }
  step("ok", `inclusion proof (${proof.proof.length} hashes) leads to the signed root of ${cp.size.toLocaleString()} events`);
  return { ok: `verified in this browser: hash, link to ${id === 1 ? "the zero hash" : `event ${id - 1}`}, and inclusion in the signed checkpoint of ${cp.size.toLocaleString()} events` };
}

async function openDetail(id, focusPanel = true) {
  let ev;
  try {
    ev = await getEvent(id);
  } catch (err) {
    showMessage(`event ${id}: ${err.message}`);
    return;
  }
  state.selected = id;
  for (const tr of $("rows").querySelectorAll('tr[aria-selected="true"]')) tr.removeAttribute("aria-selected");
  $("rows").querySelector(`tr[data-id="${id}"]`)?.setAttribute("aria-selected", "true");
  const d = $("detail");
  d.hidden = false;
  document.querySelector("main").classList.add("with-detail");
  $("detail-title").textContent = `Event ${id}`;
  $("json").textContent = pretty(ev);
  if (focusPanel) d.focus();
  await runCheck(id, ev);
}

async function runCheck(id, ev) {
  const c = $("check");
  c.dataset.state = "pending";
  $("check-text").textContent = "Checking…";
  $("steps").replaceChildren();
  try {
    const r = await check(ev);
    if (state.selected !== id) return;
    if (r.ok) {
      c.dataset.state = "ok";
      $("check-text").textContent = r.ok;
    } else {
      c.dataset.state = "pending";
      $("check-text").textContent = r.partial;
    }
  } catch (err) {
    if (state.selected !== id) return;
    c.dataset.state = "bad";
    $("check-text").textContent = err instanceof CheckFailed || err instanceof APIError ? err.message : `check failed: ${err.message}`;
  }
}

function closeDetail() {
  const id = state.selected;
  state.selected = null;
  $("detail").hidden = true;
  document.querySelector("main").classList.remove("with-detail");
  const tr = $("rows").querySelector(`tr[data-id="${id}"]`);
  tr?.removeAttribute("aria-selected");
  tr?.focus();
}

async function downloadReceipt() {
  const id = state.selected;
  if (!id) return;
  try {
    const blob = await api(`events/${id}/receipt`, { as: "blob" });
    const a = document.createElement("a");
    a.href = URL.createObjectURL(blob);
    a.download = `event-${id}.tlog-proof`;
    document.body.append(a);
    a.click();
    a.remove();
    setTimeout(() => URL.revokeObjectURL(a.href), 10000);
  } catch (err) {
    showMessage(`receipt for event ${id}: ${err.message}`);
  }
}

// ---- search -------------------------------------------------------------

// toRFC3339 turns a datetime-local value (the viewer's zone) into UTC.
function toRFC3339(v) {
  return v ? new Date(v).toISOString() : "";
}

async function search() {
  const q = filterParams();
  const since = toRFC3339($("s-since").value);
  const until = toRFC3339($("s-until").value);
  const payload = $("s-payload").value.trim();
  if (since) q.set("since", since);
  if (until) q.set("until", until);
  let path = "";
  let want = "";
  if (payload) {
    const eq = payload.indexOf("=");
    if (eq <= 0) {
      showMessage('Payload search is path=value, for example user=u-17 or order.total=12');
      return;
    }
    path = payload.slice(0, eq).trim().replace(/^payload\./, "");
    want = payload.slice(eq + 1).trim();
    q.set("payload." + path, want);
  }
  q.set("limit", "500");
  showMessage("");
  try {
    let text;
    let note = "";
    try {
      text = await api("events", { params: q, as: "text" });
    } catch (err) {
      // A server whose query API does not take these filters yet refuses
      // them: ask for the newest events and filter them here.
      if (!(err.status === 400 && /unknown query parameter/.test(err.message))) throw err;
      const plain = filterParams();
      plain.set("limit", "5000");
      text = await api("events", { params: plain, as: "text" });
      note = " (this server does not filter by time or payload: the newest 5,000 events were filtered in the browser)";
    }
    // A server without these filters ignores them: filter here as well, so
    // the results are right either way.
    const sinceMs = since ? Date.parse(since) : -Infinity;
    const untilMs = until ? Date.parse(until) : Infinity;
    const items = parse(text).items
      .filter((ev) => {
        const t = Date.parse(field(ev, "timestamp"));
        if (t < sinceMs || t > untilMs) return false;
        if (!path) return true;
        const v = lookup(ev.keys.get("payload"), path);
        return v !== undefined && (v.t === "str" ? v.v : v.raw) === want;
      })
      .map((ev) => ({ id: Number(field(ev, "event_id")), ev }))
      .reverse();
    items.forEach(remember);
    state.searching = true;
    $("back-live").hidden = false;
    renderAll(items);
    updateMode();
    $("mode").textContent = `${items.length} matching event${items.length === 1 ? "" : "s"}, newest on top${note}. ` + $("mode").textContent;
  } catch (err) {
    showMessage(`Search failed: ${err.message}`);
  }
}

function backToLive() {
  state.searching = false;
  $("back-live").hidden = true;
  renderAll(state.live);
  flushQueue();
}

// ---- wiring ---------------------------------------------------------------

function activateRow(e) {
  const tr = e.target.closest("tr[data-id]");
  if (tr) openDetail(Number(tr.dataset.id));
}

async function start() {
  try {
    state.kinds = (await fetch("kinds.json").then((r) => r.json())) || [];
  } catch {
    state.kinds = [];
  }
  $("kinds").replaceChildren(...state.kinds.map((k) => Object.assign(document.createElement("option"), { value: k })));
  if (state.token) $("token").value = state.token;
  try {
    const info = await api("");
    $("st-auth").textContent = info.auth === "on" ? (state.token ? "on (token set)" : "on") : "off (open)";
    if (info.auth === "on") $("auth").hidden = false;
  } catch (err) {
    $("st-auth").textContent = "unknown";
  }
  $("auth").addEventListener("submit", (e) => {
    e.preventDefault();
    state.token = $("token").value.trim();
    if (state.token) sessionStorage.setItem(tokenKey, state.token);
    else sessionStorage.removeItem(tokenKey);
    $("st-auth").textContent = state.token ? "on (token set)" : "on";
    reload();
    refreshStatus();
  });
  $("forget-token").addEventListener("click", () => {
    sessionStorage.removeItem(tokenKey);
    state.token = "";
    $("token").value = "";
    closeStream();
    $("rows").replaceChildren();
  });
  $("filters").addEventListener("submit", (e) => {
    e.preventDefault();
    state.filter = { kind: $("f-kind").value.trim(), source: $("f-source").value.trim() };
    if (state.searching) {
      state.searching = false;
      $("back-live").hidden = true;
    }
    updateMode();
    reload();
  });
  $("pause").addEventListener("click", () => {
    state.paused = !state.paused;
    $("pause").setAttribute("aria-pressed", String(state.paused));
    setConn(state.paused ? "paused" : state.es?.readyState === EventSource.OPEN ? "live" : $("st-conn").dataset.state);
    if (!state.paused && !state.searching) flushQueue();
    updateMode();
  });
  $("search").addEventListener("submit", (e) => {
    e.preventDefault();
    search();
  });
  $("back-live").addEventListener("click", backToLive);
  $("rows").addEventListener("click", activateRow);
  $("rows").addEventListener("keydown", (e) => {
    if (e.key === "Enter" || e.key === " ") {
      e.preventDefault();
      activateRow(e);
    } else if (e.key === "ArrowDown" || e.key === "ArrowUp") {
      e.preventDefault();
      const tr = e.target.closest("tr");
      (e.key === "ArrowDown" ? tr?.nextElementSibling : tr?.previousElementSibling)?.focus();
    }
  });
  $("close-detail").addEventListener("click", closeDetail);
  $("detail").addEventListener("keydown", (e) => {
    if (e.key === "Escape") closeDetail();
  });
  $("receipt").addEventListener("click", downloadReceipt);
  $("recheck").addEventListener("click", async () => {
    if (state.selected) runCheck(state.selected, await getEvent(state.selected));
  });
  $("forget-key").addEventListener("click", () => {
    localStorage.removeItem(pinKey);
    if (state.selected) $("recheck").click();
  });
  $("run-verify").addEventListener("click", runVerify);
  setInterval(tickRate, 1000);
  setInterval(refreshStatus, 5000);
  updateMode();
  refreshStatus();
  await reload();
  document.body.dataset.ready = "true";
}

start();
