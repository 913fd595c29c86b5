// The buyer's pages: published events (no account needed), sign-in and
// registration, checkout (free, manual payment, card through Stripe.js),
// "my tickets" with a large QR, transfer, and resale listing.

import { get, post, all, imageUrl, saveSession, session } from "./api.js";
import { h, clear, money, when, toast, field, onSubmit, errorBlock, table } from "./ui.js";

const STATUS_AT_DOOR = {
  active: "On sale",
  live: "Doors open",
  ended: "Ended",
  cancelled: "Cancelled",
};

function tierLine(t) {
  return h(
    "li",
    {},
    h("strong", {}, t.name),
    " · " + money(t.price_minor, t.currency) + " · ",
    t.zones && t.zones.length ? h("span", { class: "zones" }, t.zones.join(", ")) : "",
    t.zones && t.zones.length ? " · " : "",
    t.available > 0 ? t.available + " left" : h("span", { class: "bad" }, "sold out"),
  );
}

export async function eventList(main) {
  const form = h(
    "form",
    { class: "filters", role: "search" },
    field("Search by name", { name: "q", type: "search" }),
    field("Starting from", { name: "from", type: "date" }),
    h("button", { type: "submit" }, "Search"),
  );
  const list = h("div", { class: "cards" });
  const more = h("button", { type: "button", hidden: true }, "More events");
  let cursor = null;
  /** @type {{ q?: string, starts_from?: string }} */
  let query = {};
  async function load(reset) {
    if (reset) {
      cursor = null;
      clear(list);
    }
    const page = await get("/public/events", { query: { limit: 12, ...query, cursor } });
    for (const e of page.items) {
      list.append(
        h(
          "article",
          { class: "card" },
          h("h2", {}, h("a", { href: "#/event/" + e.id }, e.name)),
          h("p", { class: "muted" }, when(e.starts_at) + " · " + e.venue),
          h("p", {}, h("span", { class: "badge " + e.status }, STATUS_AT_DOOR[e.status] || e.status)),
          h("ul", { class: "tiers" }, e.tiers.map(tierLine)),
        ),
      );
    }
    if (!list.children.length) list.append(h("p", {}, "No events match."));
    cursor = page.next_cursor;
    more.hidden = !cursor;
  }
  onSubmit(form, async (data) => {
    const q = String(data.get("q") || "").trim();
    const from = data.get("from");
    query = { q: q || undefined, starts_from: from ? new Date(String(from)).toISOString() : undefined };
    await load(true);
  });
  more.addEventListener("click", () => load(false).catch((e) => toast(e.message, "error")));
  clear(main, h("h1", {}, "Events"), form, list, more);
  await load(true);
}

let stripeJs = null;
async function stripeClient() {
  const cfg = await get("/console/config");
  if (!cfg.stripe_publishable_key) return null;
  if (!stripeJs) {
    stripeJs = new Promise((resolve, reject) => {
      const s = document.createElement("script");
      s.src = cfg.stripe_js_url;
      s.onload = () => resolve(window.Stripe(cfg.stripe_publishable_key));
      s.onerror = () => reject(new Error("Stripe.js could not be loaded; try again or pay at the box office"));
      document.head.append(s);
    });
  }
  return stripeJs;
}

export async function eventPage(main, id) {
  const e = await get("/public/events/{id}", { path: { id } });
  const s = session();
  const buy = h("section", { "aria-labelledby": "buy-h" }, h("h2", { id: "buy-h" }, "Tickets"));
  if (e.status !== "active" && e.status !== "live") {
    buy.append(h("p", {}, "Tickets are not on sale (" + (STATUS_AT_DOOR[e.status] || e.status) + ")."));
  } else if (!s) {
    buy.append(h("p", {}, "To buy tickets, ", h("a", { href: "#/login?next=" + id }, "sign in"), " or ", h("a", { href: "#/register" }, "register"), "."));
  } else {
    const options = e.tiers
      .filter((t) => t.available > 0)
      .map((t) => [String(t.tier), t.name + " — " + money(t.price_minor, t.currency) + " (" + t.available + " left)"]);
    if (!options.length) {
      buy.append(h("p", {}, "Sold out."));
    } else {
      const form = h(
        "form",
        { class: "buy" },
        field("Tier", { name: "tier", type: "select", options }),
        field("Quantity", { name: "quantity", type: "number", min: 1, max: 10, value: 1, required: true }),
        h("button", { type: "submit" }, "Reserve and pay"),
      );
      onSubmit(form, async (data) => {
        const order = await post("/orders", { body: {
          event_id: e.id,
          items: [{ tier: Number(data.get("tier")), quantity: Number(data.get("quantity")) }],
        } });
        location.hash = "#/orders/" + order.id;
      });
      buy.append(form);
    }
  }
  clear(
    main,
    h("p", {}, h("a", { href: "#/" }, "← All events")),
    h("h1", {}, e.name),
    h("p", { class: "muted" }, when(e.starts_at) + " – " + when(e.ends_at) + " · " + e.venue),
    h("p", {}, h("span", { class: "badge " + e.status }, STATUS_AT_DOOR[e.status] || e.status)),
    h("p", {}, e.description),
    h("ul", { class: "tiers" }, e.tiers.map(tierLine)),
    buy,
  );
}

// One order: pay it (manual or card) while pending, see its tickets once paid.
export async function orderPage(main, id) {
  const o = await get("/orders/{id}", { path: { id } });
  const parts = [h("h1", {}, "Your order"), h("p", {}, "Total " + money(o.total_minor, o.currency) + " · status ", h("strong", { id: "order-status" }, o.status))];
  if (o.status === "pending") {
    parts.push(h("p", {}, "Your places are held until " + when(o.expires_at) + "."));
    const manual = h("button", { type: "button" }, "Pay at the box office (manual)");
    manual.addEventListener("click", async () => {
      try {
        await post("/orders/{id}/payments", { path: { id }, body: { method: "manual" } });
        toast("Reserved: pay at the box office; your tickets appear once the organizer confirms.");
      } catch (e) {
        toast(e.message, "error");
      }
    });
    parts.push(h("section", { "aria-labelledby": "pay-h" }, h("h2", { id: "pay-h" }, "Pay"), manual, await cardForm(id)));
  } else if (o.ticket_ids.length) {
    parts.push(h("p", {}, h("a", { href: "#/tickets" }, "Show my tickets (" + o.ticket_ids.length + ")")));
  }
  clear(main, parts);
}

async function cardForm(orderId) {
  let stripe = null;
  try {
    stripe = await stripeClient();
  } catch (e) {
    return errorBlock(e);
  }
  if (!stripe) return h("p", { class: "muted" }, "Card payment is not available here.");
  const mount = h("div", { id: "card-element", class: "card-element", role: "group", "aria-label": "Card details" });
  const pay = h("button", { type: "submit" }, "Pay by card");
  const form = h("form", { class: "card-pay" }, h("h3", {}, "Card"), mount, pay);
  const card = stripe.elements().create("card");
  queueMicrotask(() => card.mount(mount));
  onSubmit(form, async () => {
    const payment = await post("/orders/{id}/payments", { path: { id: orderId }, body: { method: "stripe" } });
    const token = await stripe.createToken(card);
    if (token.error) throw new Error(token.error.message || "the card was refused");
    const done = await post("/orders/{id}/payments/{payment_id}/card", { path: { id: orderId, payment_id: payment.id }, body: { card: token.token.card.id } });
    toast(done.stripe_status === "succeeded" ? "Paid. Your tickets are on their way." : "Payment: " + done.stripe_status);
    for (let i = 0; i < 40; i++) {
      const o = await get("/orders/{id}", { path: { id: orderId } });
      if (o.status !== "pending") {
        location.hash = "#/tickets";
        return;
      }
      await new Promise((r) => setTimeout(r, 250));
    }
  });
  return form;
}

function authForm(title, fields, submit, action) {
  const form = h("form", { class: "auth" }, ...fields, h("button", { type: "submit" }, submit));
  onSubmit(form, async (data) => {
    saveSession(await action(data));
    location.hash = "#/";
  });
  return [h("h1", {}, title), form];
}

export async function login(main) {
  clear(
    main,
    authForm(
      "Sign in",
      [field("Email", { name: "email", type: "email", autocomplete: "email", required: true }), field("Password", { name: "password", type: "password", autocomplete: "current-password", required: true })],
      "Sign in",
      (d) => post("/auth/login", { body: { email: String(d.get("email")), password: String(d.get("password")) } }),
    ),
    h("p", {}, "No account? ", h("a", { href: "#/register" }, "Register")),
  );
}

export async function register(main) {
  clear(
    main,
    authForm(
      "Register",
      [
        field("Name", { name: "display_name", autocomplete: "name", required: true }),
        field("Email", { name: "email", type: "email", autocomplete: "email", required: true }),
        field("Password", { name: "password", type: "password", autocomplete: "new-password", required: true, minlength: 10 }, "At least 10 characters."),
      ],
      "Create account",
      (d) => post("/auth/register", { body: { email: String(d.get("email")), password: String(d.get("password")), display_name: String(d.get("display_name")) } }),
    ),
  );
}

export async function myTickets(main) {
  if (!session()) {
    throw Object.assign(new Error("sign in to see your tickets"), { status: 401 });
  }
  const tickets = await all("/tickets");
  const events = new Map();
  const urls = [];
  const cards = [];
  for (const t of tickets) {
    if (!events.has(t.event_id)) {
      events.set(t.event_id, await get("/public/events/{id}", { path: { id: t.event_id } }).catch(() => ({ name: "Event", tiers: [] })));
    }
    const e = events.get(t.event_id);
    const tier = (e.tiers || []).find((x) => x.tier === t.tier);
    const valid = t.status === "issued" || t.status === "transferred" || t.status === "checked_in";
    const card = h(
      "article",
      { class: "ticket", "data-ticket": t.id },
      h("h2", {}, e.name),
      h("p", {}, (tier ? tier.name : "Tier " + t.tier) + " · " + t.holder_name + " · ", h("span", { class: "badge " + t.status }, t.status.replace("_", " "))),
    );
    if (valid && t.credential) {
      const url = await imageUrl("get", "/tickets/{id}/qr", { path: { id: t.id }, query: { format: "svg" } });
      urls.push(url);
      card.append(h("img", { class: "qr", src: url, alt: "QR code of ticket " + t.id.slice(0, 8) + " for " + e.name, width: 320, height: 320 }));
      card.append(transferForm(t), resaleForm(t, tier));
    } else {
      card.append(h("p", { class: "muted" }, "This ticket is no longer valid at the door."));
    }
    cards.push(card);
  }
  clear(main, h("h1", {}, "My tickets"), cards.length ? cards : h("p", {}, "You have no tickets yet. ", h("a", { href: "#/" }, "Find an event")));
  return () => urls.forEach((u) => URL.revokeObjectURL(u));
}

function transferForm(t) {
  const form = h(
    "form",
    { class: "inline" },
    field("Transfer to (their account email)", { name: "to", type: "email", required: true }),
    h("button", { type: "submit" }, "Transfer"),
  );
  onSubmit(form, async (d) => {
    await post("/tickets/{id}/transfer", { path: { id: t.id }, body: { to_email: String(d.get("to")) } });
    toast("Transferred: the old QR code no longer opens the gate.");
    window.dispatchEvent(new HashChangeEvent("hashchange"));
  });
  return h("details", {}, h("summary", {}, "Transfer"), form);
}

function resaleForm(t, tier) {
  const form = h(
    "form",
    { class: "inline" },
    field("Asking price (" + t.currency + ")", { name: "price", type: "number", min: 0, step: "0.01", value: ((tier ? tier.price_minor : t.price_minor) / 100).toFixed(2), required: true }, "At most the organizer's resale cap."),
    h("button", { type: "submit" }, "List for resale"),
  );
  onSubmit(form, async (d) => {
    const l = await post("/market/listings", { body: { ticket_id: t.id, price_minor: Math.round(Number(d.get("price")) * 100) } });
    toast("Listed for " + money(l.price_minor, l.currency) + ".");
  });
  return h("details", {}, h("summary", {}, "Resell"), form);
}

export { table };
