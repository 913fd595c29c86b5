// Doors, live: a server-sent event stream of the event's doors view
// (GET /events/{id}/doors/stream, read with fetch so the token stays in a
// header), drawn as it arrives; "x s ago" labels tick locally.

import { get, stream } from "./api.js";
import { h, clear, when, ago, table } from "./ui.js";
import { subnav } from "./organizer.js";

function figure(label, value, id) {
  return h("div", {}, h("dt", {}, label), h("dd", { id }, String(value)));
}

export async function doorsView(main, id) {
  const e = await get("/events/{id}", { path: { id } });
  const state = h("p", { class: "live-state", role: "status" }, "Connecting…");
  const body = h("div", { id: "doors" });
  const chartBox = h("figure", { class: "chart", "aria-label": "Admissions per minute, last hour" });
  clear(main, h("h1", {}, "Doors live · " + e.name), subnav(id, "/doors"), state, chartBox, body);
  let plot = null;
  let last = null;

  function draw(v) {
    last = v;
    const pct = v.tickets ? Math.round((v.checked_in / v.tickets) * 100) : 0;
    const fleet = v.fleet.map((d) => [
      d.name,
      d.gate + (d.zone_name ? " · " + d.zone_name : d.zone !== null && d.zone !== undefined ? " · zone " + d.zone : ""),
      h("span", { class: "badge " + (d.online ? "online" : "offline"), "data-device": d.device_id }, d.revoked ? "revoked" : d.online ? "online" : "offline"),
      h("span", { class: "ago", "data-at": d.last_seen_at || "" }, ago(d.last_seen_at)),
      d.scans_waiting ?? "—",
      d.manifest_version === null || d.manifest_version === undefined ? "—" : "v" + d.manifest_version + (d.manifest_current ? " (current)" : " (behind)") + (d.manifest_made_at ? ", made " + ago(d.manifest_made_at) : ""),
      d.clock ? d.clock.replace("_", " ") + (d.clock_trusted ? " (trusted)" : " (untrusted)") : "—",
      d.software || "—",
    ]);
    clear(
      body,
      h(
        "dl",
        { class: "figures" },
        figure("Checked in", v.checked_in + " / " + v.tickets, "checked-in"),
        figure("Inside now", v.inside_now, "inside-now"),
        figure("Remaining", v.remaining, "remaining"),
        figure("Rejected scans", v.rejected, "rejected"),
      ),
      h("progress", { max: 100, value: pct, "aria-label": "Checked in: " + pct + " percent" }),
      h("div", { class: "grid2" },
        table("Per tier", ["Tier", "Checked in", "Tickets"], v.per_tier.map((t) => [t.name, t.checked_in, t.tickets])),
        table("Per gate", ["Gate", "Admitted", "Exits", "Rejected"], v.per_gate.map((g) => [g.gate || "(online)", g.admitted, g.exits, g.rejected])),
      ),
      table("Gate fleet", ["Device", "Gate", "State", "Last seen", "Scans waiting", "Manifest", "Clock", "Software"], fleet),
      h("div", { class: "grid2" },
        table("Rejected scans by reason", ["Reason", "Scans"], v.rejected_by_reason.map((r) => [r.reason.replaceAll("_", " "), r.count])),
        table("Flagged double admissions", ["Ticket", "First scan", "Second scan"], v.double_admissions.map((d) => [String(d.ticket_id).slice(0, 8), d.first, d.second])),
      ),
      table(
        "Latest scans",
        ["When", "Gate", "Ticket", "Decision"],
        v.latest_scans.map((s) => [when(s.scanned_at), s.gate || "(online)", String(s.ticket_id).slice(0, 8), h("span", { class: "badge " + s.decision, "data-scan": s.scan_id }, s.decision + (s.reason ? ": " + s.reason.replaceAll("_", " ") : ""))]),
      ),
    );
    const xs = v.per_minute.map((m) => new Date(m.minute).getTime() / 1000);
    const ys = v.per_minute.map((m) => m.admitted);
    if (window.uPlot) {
      if (!plot) {
        const width = Math.max(260, Math.min(window.innerWidth - 40, 1100));
        plot = new window.uPlot(
          { title: "Admissions per minute (last hour)", width, height: 220, scales: { x: { time: true } }, series: [{}, { label: "Admitted", stroke: "#1d4ed8", fill: "#1d4ed822", width: 2 }] },
          [xs, ys],
          chartBox,
        );
      } else {
        plot.setData([xs, ys]);
      }
    }
  }

  const stop = stream(
    "/events/{id}/doors/stream",
    { path: { id } },
    (name, data) => {
      if (name === "doors") {
        draw(JSON.parse(data));
        state.textContent = "Live · updated " + new Date().toLocaleTimeString();
        state.dataset.updated = String(Date.now());
      } else if (name === "problem") {
        state.textContent = data;
      }
    },
    (s, err) => {
      if (s === "reconnecting") state.textContent = "Connection lost: reconnecting…";
      if (s === "refused") state.textContent = err.message;
    },
  );
  const tick = setInterval(() => {
    for (const el of body.querySelectorAll(".ago")) el.textContent = ago(el.dataset.at || null);
  }, 1000);
  return () => {
    stop();
    clearInterval(tick);
    if (plot) plot.destroy();
    void last;
  };
}
