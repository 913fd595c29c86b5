// The router: the fragment names the view (`#/`, `#/event/ID`,
// `#/tickets`, `#/console/event/ID/doors`, ...). Views fetch what they show
// from the API with the caller's own token.

import { session, clearSession, post } from "./api.js";
import { h, clear, errorBlock } from "./ui.js";
import * as shop from "./shop.js";
import * as org from "./organizer.js";
import { doorsView } from "./doors.js";
import { staffView } from "./staff.js";

const main = document.getElementById("main");
let cleanup = null;
let generation = 0;

/** @type {[RegExp, (main: HTMLElement, id?: string) => Promise<unknown>][]} */
const routes = [
  [/^\/?$/, shop.eventList],
  [/^\/event\/([\w-]+)$/, shop.eventPage],
  [/^\/login$/, shop.login],
  [/^\/register$/, shop.register],
  [/^\/tickets$/, shop.myTickets],
  [/^\/orders\/([\w-]+)$/, shop.orderPage],
  [/^\/console$/, org.myEvents],
  [/^\/console\/new$/, org.newEvent],
  [/^\/console\/event\/([\w-]+)$/, org.eventAdmin],
  [/^\/console\/event\/([\w-]+)\/doors$/, doorsView],
  [/^\/console\/event\/([\w-]+)\/sales$/, org.sales],
  [/^\/console\/event\/([\w-]+)\/orders$/, org.orders],
  [/^\/console\/event\/([\w-]+)\/devices$/, org.devices],
  [/^\/console\/event\/([\w-]+)\/staff$/, staffView],
  [/^\/admin$/, org.admin],
];

function nav() {
  const s = session();
  const role = s && s.user && s.user.role;
  const links = [["#/", "Events"]];
  if (s) links.push(["#/tickets", "My tickets"]);
  if (role === "organizer" || role === "admin") links.push(["#/console", "Organizer"]);
  if (role === "admin") links.push(["#/admin", "Admin"]);
  const items = links.map(([href, text]) => h("a", { href, "aria-current": location.hash === href ? "page" : null }, text));
  if (s) {
    items.push(h("span", { class: "who" }, s.user.email));
    items.push(
      h("button", {
        type: "button",
        class: "link",
        onclick: async () => {
          try {
            await post("/auth/logout", { body: { refresh_token: s.refresh } });
          } catch {
            /* signing out locally is what matters */
          }
          clearSession();
          location.hash = "#/";
          render();
        },
      }, "Sign out"),
    );
  } else {
    items.push(h("a", { href: "#/login" }, "Sign in"), h("a", { href: "#/register" }, "Register"));
  }
  clear(document.getElementById("nav"), items);
}

export async function render() {
  if (cleanup) {
    cleanup();
    cleanup = null;
  }
  nav();
  const path = decodeURIComponent(location.hash.replace(/^#/, "")) || "/";
  const [re, view] = routes.find(([re]) => re.test(path)) || [];
  if (!view) {
    clear(main, h("h1", {}, "Not found"), h("p", {}, "There is no page here. "), h("a", { href: "#/" }, "See the events"));
    return;
  }
  const params = path.match(re).slice(1);
  // Each view draws into its own slot, shown only if no later navigation
  // started meanwhile (a slow view never overwrites a newer one).
  const gen = ++generation;
  const slot = h("div", { class: "view" });
  clear(main, h("p", { class: "muted" }, "Loading…"));
  try {
    const stop = await view(slot, ...params);
    if (gen !== generation) {
      if (typeof stop === "function") stop();
      return;
    }
    clear(main, slot);
    if (typeof stop === "function") cleanup = stop;
  } catch (e) {
    if (gen !== generation) return;
    if (e.status === 401) {
      clear(main, h("h1", {}, "Please sign in"), h("p", {}, "This page needs an account. "), h("a", { href: "#/login" }, "Sign in"));
    } else {
      clear(main, h("h1", {}, "Something went wrong"), errorBlock(e));
    }
  }
  main.focus({ preventScroll: true });
}

window.addEventListener("hashchange", render);
render();
