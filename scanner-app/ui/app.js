// @ts-check
// The scanner window: plain JavaScript, no build step. Every value from the
// Rust side is typed in bindings.d.ts (generated from scanner-core).
/** @typedef {import('./bindings').ScanView} ScanView */
/** @typedef {import('./bindings').AppStatus} AppStatus */
/** @typedef {import('./bindings').SyncView} SyncView */
/** @typedef {import('./bindings').Counts} Counts */
/** @typedef {import('./bindings').SearchResults} SearchResults */
/** @typedef {import('./bindings').SignedIn} SignedIn */
/** @typedef {import('./bindings').CommandError} CommandError */
"use strict";

/** @type {any} */
const TAURI = /** @type {any} */ (window).__TAURI__;

/** @template T @param {string} cmd @param {Record<string, unknown>} [args] @returns {Promise<T>} */
function call(cmd, args) {
  return TAURI.core.invoke(cmd, args || {});
}

/** @param {string} id @returns {any} */
const $ = (id) => document.getElementById(id);

/** @param {unknown} e @returns {string} */
function words(e) {
  if (e && typeof e === "object" && "message" in e) return String(/** @type {CommandError} */ (e).message);
  return String(e);
}

/** @type {AppStatus | null} */
let status = null;
let soundOn = true;
let resultTimer = 0;
let view = "scan";
let resultSeq = 0;

// ---- result screen ------------------------------------------------------

/** @param {ScanView} v */
function showResult(v) {
  const el = $("result");
  el.className = "result " + v.verdict;
  $("result-headline").textContent = v.headline;
  $("result-detail").textContent = v.detail;
  $("result-who").textContent = v.display_name || "";
  const facts = [];
  if (v.tier !== null) facts.push("Tier " + v.tier);
  if (v.zones !== null) facts.push("Zone " + v.zones);
  if (v.direction === "exit") facts.push("EXIT");
  if (v.ticket_id) facts.push("Ticket " + v.ticket_id);
  $("result-facts").textContent = facts.join(" · ");
  el.dataset.verdict = v.verdict;
  el.dataset.reason = v.reason || "";
  el.dataset.scanId = v.scan_id || "";
  el.dataset.seq = String(++resultSeq);
  el.hidden = false;
  beep(v.verdict);
  clearTimeout(resultTimer);
  if (v.needs_ack) {
    $("result-ack").hidden = false;
    $("result-ack").focus();
  } else {
    $("result-ack").hidden = true;
    resultTimer = window.setTimeout(hideResult, 4000);
    focusScan();
  }
}

function hideResult() {
  clearTimeout(resultTimer);
  $("result").hidden = true;
  focusScan();
}

function resultNeedsAck() {
  return !$("result").hidden && !$("result-ack").hidden;
}

/** @param {string} verdict */
function beep(verdict) {
  if (!soundOn) return;
  try {
    const ctx = new AudioContext();
    const osc = ctx.createOscillator();
    osc.frequency.value = verdict === "green" ? 880 : verdict === "amber" ? 660 : 220;
    osc.connect(ctx.destination);
    osc.start();
    osc.stop(ctx.currentTime + (verdict === "red" ? 0.5 : 0.15));
  } catch (_) {
    // No audio device: the screen says it all.
  }
}

function focusScan() {
  if (view === "scan" && !resultNeedsAck()) $("scan-input").focus();
}

// ---- scanning -------------------------------------------------------------

/** @param {string} text */
async function scan(text) {
  if (resultNeedsAck()) return; // amber first
  $("scan-error").textContent = "";
  try {
    showResult(await call("scan", { text }));
  } catch (e) {
    hideResult();
    $("scan-error").textContent = words(e);
  }
  refreshSync();
}

// A keyboard-wedge scanner types a burst of characters a few milliseconds
// apart and ends it with Enter; people type 80 ms or more apart. Every
// keystroke is recorded here, at the document in the capture phase, before
// any input sees it, with its event time (not the time a busy page gets to
// it). On Enter the recent keys are cut into runs at pauses longer than
// WEDGE_SPLIT_MS; the last run is a scan when it has at least WEDGE_MIN_LEN
// keys whose median gap is under WEDGE_MEDIAN_GAP_MS (a median, so a few
// late keys under load do not hide a burst). Earlier runs that are
// scanner-fast too (at least WEDGE_JOIN_LEN keys, the same median) and at
// most WEDGE_BREAK_MS before it, into the same input, are the same scan,
// delayed by a hiccup; a
// person's keys before it (slow, or too few) are not. A scan is taken out of
// whatever input received it, wherever the focus is; typing is left alone.
const WEDGE_SPLIT_MS = 60;
const WEDGE_BREAK_MS = 1500;
const WEDGE_MEDIAN_GAP_MS = 35;
const WEDGE_MIN_LEN = 8;
const WEDGE_JOIN_LEN = 4;
const WEDGE_KEEP = 1024;
/** @typedef {{ ch: string, t: number, target: EventTarget | null, before: string }} Stroke */
/** @type {Stroke[]} */
let strokes = [];
/** What the last Enter decided, for the window test's failure messages. */
/** @type {any} */ (window).__wedge = null;

/** @param {number[]} xs */
function median(xs) {
  if (!xs.length) return Infinity;
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2;
}

/** @param {Stroke[]} run */
function runMedian(run) {
  const gaps = [];
  for (let i = 1; i < run.length; i++) gaps.push(run[i].t - run[i - 1].t);
  return median(gaps);
}

/**
 * The scan at the end of `keys` (an Enter at `enter`), or null when they were
 * typed by a person.
 * @param {Stroke[]} keys @param {number} enter
 * @returns {Stroke[] | null}
 */
function wedgeBurst(keys, enter) {
  if (!keys.length || enter - keys[keys.length - 1].t > WEDGE_BREAK_MS) return null;
  /** @type {Stroke[][]} */
  const runs = [[keys[0]]];
  for (let i = 1; i < keys.length; i++) {
    if (keys[i].t - keys[i - 1].t > WEDGE_SPLIT_MS) runs.push([]);
    runs[runs.length - 1].push(keys[i]);
  }
  let k = runs.length - 1;
  const last = runs[k];
  if (last.length < 2 || runMedian(last) >= WEDGE_MEDIAN_GAP_MS) return null;
  let burst = last;
  while (k > 0) {
    const prev = runs[k - 1];
    const pause = burst[0].t - prev[prev.length - 1].t;
    const sameInput = prev[prev.length - 1].target === burst[0].target; // a hiccup does not move the focus
    if (!sameInput || pause > WEDGE_BREAK_MS || prev.length < WEDGE_JOIN_LEN || runMedian(prev) >= WEDGE_MEDIAN_GAP_MS) break;
    burst = prev.concat(burst);
    k--;
  }
  return burst.length >= WEDGE_MIN_LEN ? burst : null;
}

/** @param {KeyboardEvent} ev */
function onKey(ev) {
  const t = ev.timeStamp || performance.now();
  if (ev.key === "Enter") {
    const keys = strokes;
    strokes = [];
    const burst = wedgeBurst(keys, t);
    /** @type {any} */ (window).__wedge = {
      keys: keys.length,
      burst: burst ? burst.length : 0,
      gaps: keys.slice(1).map((s, i) => Math.round(s.t - keys[i].t)),
    };
    if (!burst) return;
    const scanInput = $("scan-input");
    if (burst.every((s) => s.target === scanInput) && ev.target === scanInput) return; // its form submits it
    ev.preventDefault();
    ev.stopPropagation();
    // Undo what the burst typed: each input it reached goes back to its
    // value before the burst's first key there.
    /** @type {Set<EventTarget>} */
    const undone = new Set();
    for (const s of burst) {
      const el = /** @type {any} */ (s.target);
      if (!el || undone.has(el) || !("value" in el)) continue;
      undone.add(el);
      el.value = s.before;
      el.dispatchEvent(new Event("input", { bubbles: true }));
    }
    scan(burst.map((s) => s.ch).join(""));
    return;
  }
  if (ev.ctrlKey || ev.altKey || ev.metaKey) return;
  if (ev.key.length !== 1) {
    // A scanner sends no editing keys: someone is typing; modifiers alone
    // (Shift for capitals) change nothing.
    if (!["Shift", "CapsLock", "Unidentified"].includes(ev.key)) strokes = [];
    return;
  }
  const el = /** @type {any} */ (ev.target);
  strokes.push({ ch: ev.key, t, target: ev.target, before: el && "value" in el ? String(el.value) : "" });
  if (strokes.length > WEDGE_KEEP) strokes = strokes.slice(-WEDGE_KEEP);
}

// ---- views ------------------------------------------------------------------

/** @param {string} name */
function show(name) {
  view = name;
  for (const tab of document.querySelectorAll("#tabs [role=tab]")) {
    const on = /** @type {HTMLElement} */ (tab).dataset.view === name;
    tab.setAttribute("aria-selected", String(on));
  }
  for (const v of ["scan", "search", "counts", "settings"]) $("view-" + v).hidden = v !== name;
  if (name === "scan") focusScan();
  if (name === "search") $("search-input").focus();
  if (name === "counts") refreshCounts();
  if (name === "settings") renderSettings();
}

function renderStatus() {
  if (!status) return;
  const ready = status.phase === "ready";
  $("setup").hidden = ready;
  $("work").hidden = !ready;
  $("sync").hidden = !ready;
  $("gate-label").textContent = ready ? (status.gate || "Scanner") : "Not set up";
  const mode = $("mode-badge");
  mode.hidden = !ready;
  mode.textContent = status.direction === "exit" ? "EXIT" : "ENTRY";
  mode.classList.toggle("exit", status.direction === "exit");
  const role = $("role-badge");
  role.hidden = !ready;
  role.textContent = status.role === "supervisor" ? "SUPERVISOR" : "STEWARD (locked)";
  renderSettings();
}

function renderSettings() {
  if (!status) return;
  const sup = status.role === "supervisor";
  $("supervisor-settings").hidden = !sup;
  $("unlock-form").hidden = sup;
}

async function refreshStatus() {
  status = await call("status");
  renderStatus();
}

/** @param {number | null} secs */
function age(secs) {
  if (secs === null) return "never";
  if (secs < 90) return Math.round(secs) + " s ago";
  if (secs < 5400) return Math.round(secs / 60) + " min ago";
  return Math.round(secs / 3600) + " h ago";
}

async function refreshSync() {
  if (!status || status.phase !== "ready") return;
  try {
    /** @type {SyncView} */
    const s = await call("sync_state");
    const el = $("sync");
    el.className = "sync " + (s.online ? "online" : "offline");
    el.dataset.online = String(s.online);
    el.dataset.waiting = String(s.waiting);
    $("sync-summary").textContent = s.summary;
    const peers = s.peers.filter((p) => p.reachable).length;
    $("sync-details").textContent =
      "last sync " + age(s.last_sync_age_secs) +
      " · " + peers + "/" + s.peers.length + " peers" +
      " · manifest v" + s.manifest_version + " (" + s.manifest_entries + " tickets, " + age(s.manifest_age_secs) + ")";
  } catch (e) {
    $("sync-summary").textContent = words(e);
  }
}

async function refreshCounts() {
  try {
    /** @type {Counts} */
    const c = await call("counts");
    $("count-inside").textContent = String(c.inside);
    $("count-admitted").textContent = String(c.admitted);
    $("count-capacity").textContent = String(c.capacity);
    $("count-recent").textContent = String(c.last_5_min);
    $("count-rejected").textContent = String(c.rejected_here);
    const body = $("per-gate").querySelector("tbody");
    body.replaceChildren(
      ...c.per_gate.map((g) => {
        const tr = document.createElement("tr");
        for (const text of [g.gate || "(unnamed)", String(g.admitted)]) {
          const td = document.createElement("td");
          td.textContent = text;
          tr.append(td);
        }
        return tr;
      }),
    );
  } catch (e) {
    $("count-inside").textContent = "?";
  }
}

// ---- search and manual check-in ---------------------------------------

let searchSeq = 0;
async function runSearch() {
  const seq = ++searchSeq;
  const q = $("search-input").value;
  try {
    /** @type {SearchResults} */
    const r = await call("search", { query: q });
    if (seq !== searchSeq) return; // a newer keystroke won
    $("search-total").textContent = q.trim().length < 2 ? "" : r.total + " found";
    $("search-results").replaceChildren(
      ...r.hits.map((h) => {
        const li = document.createElement("li");
        li.dataset.ticket = h.ticket_id;
        const name = document.createElement("span");
        name.className = "name";
        name.textContent = h.display_name;
        const tier = document.createElement("span");
        tier.textContent = "Tier " + h.tier;
        const st = document.createElement("span");
        st.className = h.status === "revoked" ? "revoked" : "";
        st.textContent = h.status;
        const pr = document.createElement("span");
        pr.className = "presence" + (h.inside ? " inside" : "");
        pr.textContent = h.presence;
        const btn = document.createElement("button");
        btn.type = "button";
        btn.className = "manual";
        btn.textContent = "Check in";
        btn.hidden = !status || status.role !== "supervisor";
        btn.addEventListener("click", () => openManual(h.ticket_id, h.display_name));
        li.append(name, tier, st, pr, btn);
        return li;
      }),
    );
  } catch (e) {
    $("search-total").textContent = words(e);
  }
}

/** @param {string} ticket @param {string} name */
function openManual(ticket, name) {
  $("manual-ticket").value = ticket;
  $("manual-name").textContent = name;
  $("manual-reason").value = "";
  $("manual-form").hidden = false;
  $("manual-reason").focus();
}

// ---- wiring ---------------------------------------------------------------

/** @param {string} id @param {(ev: Event) => Promise<void>} fn */
function onSubmit(id, fn) {
  $(id).addEventListener("submit", (/** @type {Event} */ ev) => {
    ev.preventDefault();
    fn(ev);
  });
}

function wire() {
  document.addEventListener("keydown", onKey, true);
  document.addEventListener("keydown", (ev) => {
    if (ev.key === "Escape" && !$("result").hidden && !resultNeedsAck()) hideResult();
    const keys = { F1: "scan", F2: "search", F3: "counts", F4: "settings" };
    const target = /** @type {Record<string, string>} */ (keys)[ev.key];
    if (target && status && status.phase === "ready") {
      ev.preventDefault();
      hideResult();
      show(target);
    }
  });
  for (const tab of document.querySelectorAll("#tabs [role=tab]")) {
    tab.addEventListener("click", () => show(/** @type {HTMLElement} */ (tab).dataset.view || "scan"));
  }
  $("result-ack").addEventListener("click", hideResult);
  $("sound-toggle").addEventListener("click", () => {
    soundOn = !soundOn;
    $("sound-toggle").setAttribute("aria-pressed", String(soundOn));
    $("sound-toggle").textContent = soundOn ? "Sound on" : "Sound off";
  });

  onSubmit("scan-form", async () => {
    const input = $("scan-input");
    const text = input.value;
    input.value = "";
    if (text.trim()) await scan(text);
  });

  onSubmit("signin-form", async () => {
    $("setup-error").textContent = "";
    try {
      /** @type {SignedIn} */
      const who = await call("sign_in", {
        cloudUrl: $("cloud-url").value,
        email: $("email").value,
        password: $("password").value,
      });
      $("signed-in-as").textContent = "Signed in as " + who.email + " (" + who.role + ")";
      const list = $("event-list");
      list.querySelectorAll("label").forEach((/** @type {Element} */ l) => l.remove());
      who.events.forEach((ev, i) => {
        const label = document.createElement("label");
        const radio = document.createElement("input");
        radio.type = "radio";
        radio.name = "event";
        radio.value = ev.id;
        radio.checked = i === 0;
        label.append(radio, ev.name + " · " + ev.venue + " · " + ev.starts_at.slice(0, 16).replace("T", " "));
        list.append(label);
      });
      if (!who.events.length)
        $("setup-error").textContent =
          who.role === "staff"
            ? "This account is on no event's staff roster yet: ask the organizer to add you on the console's Staff page, then sign in again."
            : "This account has no events to work at.";
      $("event-form").hidden = false;
      $("gate-name").focus();
    } catch (e) {
      $("setup-error").textContent = words(e);
    }
  });

  onSubmit("event-form", async () => {
    $("setup-error").textContent = "";
    const picked = /** @type {HTMLInputElement | null} */ (document.querySelector("input[name=event]:checked"));
    if (!picked) {
      $("setup-error").textContent = "Pick an event first.";
      return;
    }
    const zone = $("zone").value === "" ? null : Number($("zone").value);
    try {
      status = await call("enroll_for", {
        choice: { event_id: picked.value, gate: $("gate-name").value, zone, pin: $("pin").value },
      });
      renderStatus();
      show("scan");
      refreshSync();
    } catch (e) {
      $("setup-error").textContent = words(e);
    }
  });

  onSubmit("code-form", async () => {
    $("setup-error").textContent = "";
    try {
      status = await call("enroll_with_code", {
        cloudUrl: $("code-cloud-url").value,
        code: $("code").value,
        operator: $("code-operator").value,
        pin: $("code-pin").value,
      });
      renderStatus();
      show("scan");
      refreshSync();
    } catch (e) {
      $("setup-error").textContent = words(e);
    }
  });

  $("search-input").addEventListener("input", runSearch);
  onSubmit("manual-form", async () => {
    try {
      const v = await call("check_in_manually", {
        ticketId: $("manual-ticket").value,
        reason: $("manual-reason").value,
      });
      $("manual-form").hidden = true;
      showResult(/** @type {ScanView} */ (v));
      runSearch();
    } catch (e) {
      $("search-total").textContent = words(e);
    }
  });
  $("manual-cancel").addEventListener("click", () => {
    $("manual-form").hidden = true;
    $("search-input").focus();
  });

  /** @param {string} d */
  const setMode = async (d) => {
    try {
      status = await call("set_direction", { direction: d });
      renderStatus();
      $("settings-error").textContent = "Mode: " + d;
    } catch (e) {
      $("settings-error").textContent = words(e);
    }
  };
  $("mode-entry").addEventListener("click", () => setMode("entry"));
  $("mode-exit").addEventListener("click", () => setMode("exit"));
  $("lock").addEventListener("click", async () => {
    try {
      status = await call("lock");
      renderStatus();
      show("scan");
    } catch (e) {
      $("settings-error").textContent = words(e);
    }
  });
  onSubmit("unlock-form", async () => {
    try {
      status = await call("unlock", { pin: $("unlock-pin").value });
      $("unlock-pin").value = "";
      $("settings-error").textContent = "";
      renderStatus();
    } catch (e) {
      $("settings-error").textContent = words(e);
    }
  });
  onSubmit("pin-form", async () => {
    try {
      status = await call("set_pin", { pin: $("new-pin").value });
      $("new-pin").value = "";
      $("settings-error").textContent = "PIN changed";
    } catch (e) {
      $("settings-error").textContent = words(e);
    }
  });

  let cameraOn = false;
  $("camera-toggle").addEventListener("click", async () => {
    try {
      cameraOn = await call(cameraOn ? "camera_stop" : "camera_start");
      $("camera-toggle").textContent = cameraOn ? "Stop camera" : "Start camera";
      $("camera-preview").hidden = !cameraOn;
    } catch (e) {
      $("scan-error").textContent = words(e);
    }
    focusScan();
  });
  TAURI.event.listen("camera-scan", (/** @type {{payload: any}} */ ev) => {
    if ("verdict" in ev.payload) showResult(ev.payload);
    else $("scan-error").textContent = words(ev.payload);
    refreshSync();
  });
  TAURI.event.listen("camera-preview", (/** @type {{payload: string}} */ ev) => {
    $("camera-preview").src = ev.payload;
  });
}

async function start() {
  wire();
  await refreshStatus();
  if (status && status.phase === "ready") show("scan");
  else $("cloud-url").focus();
  setInterval(refreshSync, 500);
  setInterval(() => {
    if (view === "counts") refreshCounts();
  }, 2000);
  refreshSync();
}

start();
