// The organizer's console: their events (create, edit, tiers, lifecycle,
// box office), sales, orders, devices; and the admin's user search. Each
// view asks the API with the caller's token, so it shows exactly what the
// API authorizes (someone else's event answers 403/404 here too).

import { get, post, put, patch, all, imageUrl, response, session } from "./api.js";
import { h, clear, money, when, toast, field, onSubmit, table, errorBlock, isoOrNull, ago } from "./ui.js";

// What each status means at the door (the gates read it in the manifest).
export const DOOR_MEANING = {
  draft: "Draft: not public, nothing on sale; gates have nothing to admit.",
  active: "On sale: tickets sell; gates admit valid tickets in their validity window.",
  live: "Doors open: the event is running; gates admit valid tickets and sales continue.",
  ended: "Ended: no more sales; gates refuse every ticket as the event is over.",
  cancelled: "Cancelled: every ticket is revoked; gates refuse them all.",
};
const NEXT = { draft: ["active", "cancelled"], active: ["live", "cancelled"], live: ["ended", "cancelled"], ended: [], cancelled: [] };

function me() {
  const s = session();
  if (!s) {
    throw Object.assign(new Error("sign in as an organizer"), { status: 401 });
  }
  return s.user;
}

export function subnav(id, current) {
  const tabs = [
    ["", "Event"],
    ["/doors", "Doors live"],
    ["/sales", "Sales"],
    ["/orders", "Orders"],
    ["/devices", "Devices"],
    ["/staff", "Staff"],
  ];
  return h(
    "nav",
    { class: "tabs", "aria-label": "Event sections" },
    tabs.map(([p, t]) => h("a", { href: "#/console/event/" + id + p, "aria-current": p === current ? "page" : null }, t)),
  );
}

export async function myEvents(main) {
  const user = me();
  const events = await all("/events/admin/{admin_id}", { path: { admin_id: user.id } });
  clear(
    main,
    h("h1", {}, "Your events"),
    h("p", {}, h("a", { href: "#/console/new", class: "button" }, "Create an event")),
    events.length
      ? table(
          "Events you organize",
          ["Name", "Starts", "Status", ""],
          events.map((e) => [e.name, when(e.starts_at), h("span", { class: "badge " + e.status }, e.status), h("a", { href: "#/console/event/" + e.id }, "Manage")]),
        )
      : h("p", {}, "No events yet."),
  );
}

function tierFields(n) {
  return h(
    "fieldset",
    { class: "tier" },
    h("legend", {}, "Tier " + n),
    field("Name", { name: "tier_name", required: true, value: n === 1 ? "General admission" : "" }),
    field("Price (major units, 0 = free)", { name: "tier_price", type: "number", min: 0, step: "0.01", required: true, value: "0" }),
    field("Capacity", { name: "tier_capacity", type: "number", min: 1, required: true, value: "100" }),
  );
}

export async function newEvent(main) {
  me();
  const tiers = h("div", {}, tierFields(1));
  const addTier = h("button", { type: "button", class: "secondary" }, "Add a tier");
  addTier.addEventListener("click", () => tiers.append(tierFields(tiers.children.length + 1)));
  const form = h(
    "form",
    { class: "event-form" },
    field("Name", { name: "name", required: true }),
    field("Description", { name: "description", type: "textarea" }),
    field("Venue", { name: "venue", required: true }),
    field("Starts", { name: "starts_at", type: "datetime-local", required: true }),
    field("Ends", { name: "ends_at", type: "datetime-local", required: true }),
    field("Currency (ISO 4217)", { name: "currency", required: true, value: "EUR", maxlength: 3 }),
    tiers,
    addTier,
    h("button", { type: "submit" }, "Create draft"),
  );
  onSubmit(form, async (d) => {
    const names = d.getAll("tier_name");
    const prices = d.getAll("tier_price");
    const caps = d.getAll("tier_capacity");
    const e = await post("/events", { body: {
      name: d.get("name"),
      description: d.get("description") || "",
      venue: d.get("venue"),
      starts_at: isoOrNull(d.get("starts_at")),
      ends_at: isoOrNull(d.get("ends_at")),
      currency: String(d.get("currency")).toUpperCase(),
      tiers: names.map((name, i) => ({ tier: i + 1, name: String(name), price_minor: Math.round(Number(prices[i]) * 100), capacity: Number(caps[i]) })),
    } });
    toast("Draft created. Put it on sale when ready.");
    location.hash = "#/console/event/" + e.id;
  });
  clear(main, h("h1", {}, "New event"), form);
}

export async function eventAdmin(main, id) {
  me();
  const e = await get("/events/{id}", { path: { id } });
  const toLocal = (iso) => new Date(new Date(iso).getTime() - new Date().getTimezoneOffset() * 60000).toISOString().slice(0, 16);
  const edit = h(
    "form",
    { class: "event-form" },
    field("Name", { name: "name", required: true, value: e.name }),
    field("Description", { name: "description", type: "textarea" }),
    field("Venue", { name: "venue", required: true, value: e.venue }),
    field("Starts", { name: "starts_at", type: "datetime-local", required: true, value: toLocal(e.starts_at) }),
    field("Ends", { name: "ends_at", type: "datetime-local", required: true, value: toLocal(e.ends_at) }),
    h("button", { type: "submit" }, "Save"),
  );
  edit.querySelector("textarea").value = e.description;
  onSubmit(edit, async (d) => {
    await put("/events/{id}", { path: { id }, body: {
      name: d.get("name"),
      description: d.get("description") || "",
      venue: d.get("venue"),
      starts_at: isoOrNull(d.get("starts_at")),
      ends_at: isoOrNull(d.get("ends_at")),
    } });
    toast("Saved.");
  });
  const lifecycle = h(
    "section",
    { "aria-labelledby": "life-h" },
    h("h2", { id: "life-h" }, "Lifecycle"),
    h("p", {}, "Now: ", h("strong", { class: "badge " + e.status }, e.status), " — " + DOOR_MEANING[e.status]),
    h(
      "ul",
      { class: "steps" },
      NEXT[e.status].map((to) => {
        const b = h("button", { type: "button", class: to === "cancelled" ? "danger" : "" }, "Move to " + to);
        b.addEventListener("click", async () => {
          if (to === "cancelled" && !confirm("Cancel the event? Every ticket is revoked at the gates.")) return;
          try {
            await patch("/events/{id}/status", { path: { id }, body: { status: to } });
            toast("Event is now " + to + ".");
            eventAdmin(main, id);
          } catch (err) {
            toast(err.message, "error");
          }
        });
        return h("li", {}, b, " " + DOOR_MEANING[to]);
      }),
    ),
  );
  const addTier = h(
    "form",
    { class: "inline" },
    field("Tier name", { name: "name", required: true }),
    field("Price", { name: "price", type: "number", min: 0, step: "0.01", required: true }),
    field("Capacity", { name: "capacity", type: "number", min: 1, required: true }),
    h("button", { type: "submit" }, "Add tier"),
  );
  onSubmit(addTier, async (d) => {
    const next = Math.max(0, ...e.tiers.map((t) => t.tier)) + 1;
    await post("/events/{id}/tiers", { path: { id }, body: { tier: next, name: String(d.get("name")), price_minor: Math.round(Number(d.get("price")) * 100), capacity: Number(d.get("capacity")) } });
    toast("Tier added.");
    eventAdmin(main, id);
  });
  const sale = h(
    "form",
    { class: "inline" },
    field("Tier", { name: "tier", type: "select", options: e.tiers.map((t) => [String(t.tier), t.name]) }),
    field("Quantity", { name: "quantity", type: "number", min: 1, max: 50, value: 1, required: true }),
    field("Name on tickets", { name: "holder", required: true }),
    field("Paid by", { name: "method", type: "select", options: [["cash", "Cash"], ["card", "Card terminal"], ["other", "Other"]] }),
    h("button", { type: "submit" }, "Sell at the box office"),
  );
  onSubmit(sale, async (d) => {
    const r = await post("/events/{id}/ticket-sale", { path: { id }, body: { tier: Number(d.get("tier")), quantity: Number(d.get("quantity")), holder_name: String(d.get("holder")), payment_method: String(d.get("method")) } });
    toast("Sold " + r.tickets.length + " ticket(s) for " + money(r.total_minor, r.currency) + ".");
  });
  const compOut = h("div", { "aria-live": "polite" });
  const comp = h(
    "form",
    { class: "inline" },
    field("Tier", { name: "tier", type: "select", options: e.tiers.map((t) => [String(t.tier), t.name]) }),
    field("Guest name", { name: "holder", required: true }),
    h("button", { type: "submit" }, "Issue a comp ticket"),
  );
  onSubmit(comp, async (d) => {
    const t = await post("/tickets", { body: { event_id: id, tier: Number(d.get("tier")), holder_name: String(d.get("holder")) } });
    const url = await imageUrl("get", "/tickets/{id}/qr", { path: { id: t.id }, query: { format: "svg" } });
    clear(
      compOut,
      h("p", {}, "Complimentary ticket for " + t.holder_name + " (free, counted like any ticket). Print or send this QR:"),
      h("img", { class: "qr", id: "comp-qr", src: url, alt: "QR code of the comp ticket for " + t.holder_name, width: 280, height: 280, "data-ticket": t.id }),
    );
  });
  clear(
    main,
    h("h1", {}, e.name),
    subnav(id, ""),
    lifecycle,
    h("section", { "aria-labelledby": "edit-h" }, h("h2", { id: "edit-h" }, "Details"), edit),
    h(
      "section",
      { "aria-labelledby": "tiers-h" },
      h("h2", { id: "tiers-h" }, "Tiers"),
      table("Ticket tiers", ["#", "Name", "Price", "Capacity", "Available"], e.tiers.map((t) => [t.tier, t.name, money(t.price_minor, t.currency), t.capacity, t.available])),
      addTier,
    ),
    h("section", { "aria-labelledby": "box-h" }, h("h2", { id: "box-h" }, "Box office"), sale),
    h("section", { "aria-labelledby": "comp-h" }, h("h2", { id: "comp-h" }, "Comps"), comp, compOut),
  );
}

export async function orders(main, id) {
  me();
  const e = await get("/events/{id}", { path: { id } });
  const results = h("div", { "aria-live": "polite" });
  const form = h(
    "form",
    { class: "filters", role: "search" },
    field("Status", { name: "status", type: "select", options: [["", "Any"], ["pending", "Pending"], ["paid", "Paid"], ["fulfilled", "Fulfilled"], ["refunded", "Refunded"], ["cancelled", "Cancelled"], ["expired", "Expired"]] }),
    field("Buyer email contains", { name: "email", type: "search" }),
    field("Created from", { name: "from", type: "datetime-local" }),
    field("Created before", { name: "before", type: "datetime-local" }),
    h("button", { type: "submit" }, "Find orders"),
  );
  /** @type {import("./client-types").Query<"get", "/events/{id}/orders">} */
  let query = {};
  async function load() {
    const page = await get("/events/{id}/orders", { path: { id }, query: { limit: 100, ...query } });
    clear(
      results,
      page.items.length
        ? table(
            "Orders (" + page.items.length + (page.next_cursor ? "+" : "") + ")",
            ["Created", "Buyer", "Total", "Status", "Actions"],
            page.items.map((o) => [when(o.created_at), o.buyer_email || "box office", money(o.total_minor, o.currency), h("span", { class: "badge " + o.status }, o.status), actions(o)]),
          )
        : h("p", {}, "No orders match."),
    );
  }
  function actions(o) {
    const out = h("div", { class: "actions" });
    const act = (label, status, cls) => {
      const b = h("button", { type: "button", class: cls || "", "data-order": o.id, "data-action": status }, label);
      b.addEventListener("click", async () => {
        if (status === "refunded" && !confirm("Refund this order? Its tickets are revoked at the gates.")) return;
        try {
          await put("/orders/{id}/status", { path: { id: o.id }, body: { status } });
          toast(status === "paid" ? "Payment confirmed: tickets issued." : "Refunded: tickets revoked.");
          await load();
        } catch (err) {
          toast(err.message, "error");
        }
      });
      return b;
    };
    if (o.status === "pending") out.append(act("Confirm payment", "paid"));
    if (o.status === "paid" || o.status === "fulfilled") out.append(act("Refund", "refunded", "danger"));
    const trail = h("button", { type: "button", class: "secondary" }, "Tickets");
    trail.addEventListener("click", async () => {
      try {
        const full = await get("/orders/{id}", { path: { id: o.id } });
        const rows = [];
        for (const t of full.ticket_ids) {
          for (const a of await get("/tickets/{id}/history", { path: { id: t } })) rows.push([t.slice(0, 8), when(a.at), a.from_status ? a.from_status + " → " + a.to_status : a.to_status || "", a.reason || ""]);
        }
        trail.replaceWith(rows.length ? table("Audit trail", ["Ticket", "When", "Change", "Why"], rows) : h("p", {}, "No tickets."));
      } catch (err) {
        toast(err.message, "error");
      }
    });
    out.append(trail);
    return out;
  }
  onSubmit(form, async (d) => {
    query = {
      status: /** @type {any} */ (d.get("status")) || undefined,
      buyer_email: String(d.get("email") || "") || undefined,
      created_from: d.get("from") ? isoOrNull(d.get("from")) : undefined,
      created_before: d.get("before") ? isoOrNull(d.get("before")) : undefined,
    };
    await load();
  });
  clear(main, h("h1", {}, "Orders · " + e.name), subnav(id, "/orders"), form, results);
  await load();
}

export async function devices(main, id) {
  me();
  const e = await get("/events/{id}", { path: { id } });
  const codeOut = h("div", { "aria-live": "polite" });
  const form = h(
    "form",
    { class: "inline" },
    field("Gate label", { name: "gate", required: true, value: "Main entrance" }),
    field("Direction", { name: "direction", type: "select", options: [["entry", "Entry"], ["exit", "Exit"]] }),
    h("button", { type: "submit" }, "Create enrollment code"),
  );
  onSubmit(form, async (d) => {
    const c = await post("/devices/enrollment-codes", { body: { event_id: id, gate: String(d.get("gate")), direction: d.get("direction") === "exit" ? "exit" : "entry" } });
    const url = await imageUrl("post", "/console/qr", { body: { text: c.code } });
    clear(
      codeOut,
      h("p", {}, "Enrollment code for ", h("strong", {}, c.gate), " (one device, until " + new Date(c.expires_at * 1000).toLocaleString() + "):"),
      h("p", { class: "code", id: "enroll-code" }, c.code),
      h("img", { class: "qr", src: url, alt: "QR code of enrollment code " + c.code, width: 280, height: 280 }),
      h("p", { class: "muted" }, "On the gate: gate-node enroll --cloud " + location.origin + " --code " + c.code),
    );
  });
  const list = h("div");
  async function load() {
    const [devs, roster] = await Promise.all([get("/devices", { query: { event_id: id } }), get("/events/{id}/staff", { path: { id } })]);
    const who = new Map(roster.items.map((s) => [s.user_id, s.email]));
    const me = session().user;
    const by = (u) => (!u ? "—" : u === me.id ? "you" : who.get(u) || "another account");
    clear(
      list,
      devs.length
        ? table(
            "Enrolled devices",
            ["Name", "Gate", "Direction", "Enrolled", "By", "Last seen", "State", ""],
            devs.map((d) => {
              const b = d.revoked ? "" : h("button", { type: "button", class: "danger", "data-revoke": d.id }, "Revoke");
              if (b)
                b.addEventListener("click", async () => {
                  if (!confirm("Revoke " + d.name + "? It can no longer sync.")) return;
                  try {
                    await post("/devices/{id}/revoke", { path: { id: d.id } });
                    toast("Revoked.");
                    await load();
                  } catch (err) {
                    toast(err.message, "error");
                  }
                });
              return [d.name, d.gate, d.direction, when(d.enrolled_at), by(d.enrolled_by), ago(d.last_seen_at), d.revoked ? "revoked" : "enrolled", b];
            }),
          )
        : h("p", {}, "No devices enrolled yet."),
    );
  }
  clear(main, h("h1", {}, "Devices · " + e.name), subnav(id, "/devices"), h("section", {}, h("h2", {}, "Enroll a gate or scanner"), form, codeOut), h("section", {}, h("h2", {}, "Fleet"), list));
  await load();
}

function chart(el, title, labels, series) {
  if (!window.uPlot) {
    el.append(h("p", { class: "muted" }, "Chart unavailable."));
    return null;
  }
  // Drawn before the view is attached: size from the window (two charts
  // side by side on a wide screen, one on a phone).
  const w = window.innerWidth;
  const width = Math.max(260, Math.min(w >= 900 ? (Math.min(w, 1152) - 64) / 2 : w - 40, 560));
  return new window.uPlot(
    {
      title,
      width,
      height: 240,
      scales: { x: { time: true } },
      series: [{}, ...series.map(([label, stroke]) => ({ label, stroke, width: 2, fill: stroke + "22" }))],
      axes: [{}, { size: 60 }],
    },
    labels,
    el,
  );
}

export async function sales(main, id) {
  me();
  const e = await get("/events/{id}", { path: { id } });
  // The series is aggregated by the cloud (every paid order, per hour), so
  // an event with any number of orders charts in one small answer.
  const [stats, funnel, series] = await Promise.all([
    get("/events/{id}/stats", { path: { id } }),
    get("/events/{id}/analytics", { path: { id } }),
    get("/events/{id}/sales-over-time", { path: { id }, query: { bucket: "hour" } }),
  ]);
  const xs = [];
  const revenue = [];
  const tickets = [];
  let r = 0;
  let n = 0;
  for (const p of series.points) {
    r += p.revenue_minor / 100;
    n += p.tickets;
    xs.push(new Date(p.start).getTime() / 1000);
    revenue.push(r);
    tickets.push(n);
  }
  const charts = h("div", { class: "charts" });
  const revEl = h("figure", { class: "chart", "aria-label": "Revenue over time" });
  const tixEl = h("figure", { class: "chart", "aria-label": "Tickets sold over time" });
  charts.append(revEl, tixEl);
  const reports = h("div", { class: "actions" });
  for (const type of /** @type {const} */ (["sales", "attendance", "revenue", "demographic", "performance"])) {
    const b = h("button", { type: "button", class: "secondary" }, "Download " + type + " (CSV)");
    b.addEventListener("click", async () => {
      try {
        const rep = await post("/events/{id}/reports", { path: { id }, body: { type } });
        const resp = await response("get", "/events/reports/{id}", { path: { id: rep.id }, query: { format: "csv" } });
        const url = URL.createObjectURL(await resp.blob());
        const a = h("a", { href: url, download: type + "-" + id.slice(0, 8) + ".csv" }, type + ".csv");
        document.body.append(a);
        a.click();
        a.remove();
        setTimeout(() => URL.revokeObjectURL(url), 10000);
      } catch (err) {
        toast(err.message, "error");
      }
    });
    reports.append(b);
  }
  const pct = (x) => (x === null || x === undefined ? "—" : Math.round(x * 1000) / 10 + " %");
  clear(
    main,
    h("h1", {}, "Sales · " + e.name),
    subnav(id, "/sales"),
    h(
      "dl",
      { class: "figures" },
      h("div", {}, h("dt", {}, "Revenue"), h("dd", {}, money(stats.revenue_minor, stats.currency))),
      h("div", {}, h("dt", {}, "Sold"), h("dd", {}, stats.sold + " / " + stats.capacity)),
      h("div", {}, h("dt", {}, "Sell-through"), h("dd", {}, pct(stats.sell_out_rate))),
      h("div", {}, h("dt", {}, "Views → orders"), h("dd", {}, pct(funnel.view_to_order_rate))),
      h("div", {}, h("dt", {}, "Orders → paid"), h("dd", {}, pct(funnel.order_to_paid_rate))),
    ),
    charts,
    table("Per tier", ["Tier", "Capacity", "Sold", "Reserved", "Checked in", "Revenue"], stats.tiers.map((t) => [t.name, t.capacity, t.sold, t.reserved, t.checked_in, money(t.revenue_minor, stats.currency)])),
    table("Funnel", ["Page views", "Orders", "Paid", "Checked in"], [[funnel.views, funnel.orders, funnel.paid, funnel.checked_in]]),
    h("section", {}, h("h2", {}, "Reports"), reports),
  );
  if (xs.length) {
    chart(revEl, "Revenue (" + e.currency + ")", [xs, revenue], [["Revenue", "#1d4ed8"]]);
    chart(tixEl, "Tickets sold", [xs, tickets], [["Tickets", "#047857"]]);
  } else {
    revEl.append(h("p", { class: "muted" }, "No paid orders yet."));
  }
}

export async function admin(main) {
  const user = me();
  if (user.role !== "admin") {
    clear(main, h("h1", {}, "Admin"), errorBlock(new Error("this needs the admin role")));
    return;
  }
  const results = h("div", { "aria-live": "polite" });
  const form = h("form", { class: "filters", role: "search" }, field("Email contains", { name: "email", type: "search", required: true }), h("button", { type: "submit" }, "Find users"));
  onSubmit(form, async (d) => {
    const page = await get("/users", { query: { email: String(d.get("email")) } });
    clear(
      results,
      page.items.length
        ? table(
            "Users",
            ["Email", "Name", "Role", "Change role"],
            page.items.map((u) => {
              const sel = field("Role for " + u.email, { type: "select", options: [["customer", "Customer"], ["organizer", "Organizer"], ["staff", "Staff"], ["admin", "Admin"]] });
              sel.querySelector("select").value = u.role;
              const b = h("button", { type: "button" }, "Grant");
              b.addEventListener("click", async () => {
                try {
                  const v = await patch("/users/{id}/role", { path: { id: u.id }, body: { role: sel.querySelector("select").value } });
                  toast(v.email + " is now " + v.role + " (from their next sign-in).");
                } catch (err) {
                  toast(err.message, "error");
                }
              });
              return [u.email, u.display_name, u.role, h("div", { class: "inline" }, sel, b)];
            }),
          )
        : h("p", {}, "No users match."),
    );
  });
  clear(main, h("h1", {}, "Admin · users"), form, results);
}
