// Browser driver for the console's end-to-end test (e2e/tests/e2e/console.rs).
// Debian's chromium driven by playwright-core; the Rust test sends one JSON
// command per line on stdin and reads one JSON answer per line on stdout,
// so real processes (cloud, gate nodes) stay under the Rust test's control.
//
// Env: BASE_URL (the cloud), SHOTS_DIR (screenshots for docs/images),
// WORK_DIR (QR screenshots the gate scans, the browser profile).

import { chromium } from "playwright-core";
import AxeBuilder from "@axe-core/playwright";
import { mkdtempSync, existsSync } from "node:fs";
import { join } from "node:path";
import readline from "node:readline";

const base = process.env.BASE_URL;
const shots = process.env.SHOTS_DIR;
const work = process.env.WORK_DIR;
const CHROMIUM = "/usr/bin/chromium";
if (!existsSync(CHROMIUM)) {
  console.error("Debian's chromium is required at /usr/bin/chromium (scripts/setup installs it)");
  process.exit(2);
}

const context = await chromium.launchPersistentContext(mkdtempSync(join(work, "profile-")), {
  executablePath: CHROMIUM,
  headless: true,
  args: ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking", "--disable-component-update", "--disable-sync"],
  viewport: { width: 1280, height: 900 },
});
const pages = new Map();
const problems = [];

async function page(name, phone) {
  if (!pages.has(name)) {
    const p = await context.newPage();
    if (phone) await p.setViewportSize({ width: 390, height: 844 });
    p.on("pageerror", (e) => problems.push(name + ": " + e.message));
    p.on("console", (m) => {
      if (m.type() === "error") problems.push(name + " console: " + m.text());
    });
    await p.goto(base + "/#/");
    pages.set(name, p);
  }
  return pages.get(name);
}

async function go(p, hash) {
  const url = base + "/" + hash;
  if (p.url() === url) await p.reload();
  else await p.goto(url);
  await p.waitForFunction(() => !document.querySelector("main p.muted") || document.querySelector("main p.muted").textContent !== "Loading…");
}

async function toastSays(p, re) {
  const t = p.locator("#toast");
  await t.filter({ hasText: re }).waitFor({ timeout: 15000 });
  const text = await t.textContent();
  if (/error/.test((await t.getAttribute("class")) || "")) throw new Error("the page said: " + text);
  return text;
}

// After sign-in the page goes to the event list: wait for that view, so
// the next command does not race it.
async function signedIn(p, email) {
  await p.waitForURL((u) => u.hash === "#/");
  await p.locator("main h1", { hasText: "Events" }).waitFor();
  await p.locator(".who", { hasText: email }).waitFor();
}

const commands = {
  async register({ who, email, password, name, phone }) {
    const p = await page(who, phone);
    await go(p, "#/register");
    await p.getByLabel("Name").fill(name);
    await p.getByLabel("Email").fill(email);
    await p.getByLabel("Password").fill(password);
    await p.getByRole("button", { name: "Create account" }).click();
    await signedIn(p, email);
    return {};
  },
  async login({ who, email, password, phone }) {
    const p = await page(who, phone);
    await go(p, "#/login");
    await p.getByLabel("Email").fill(email);
    await p.getByLabel("Password").fill(password);
    await p.getByRole("button", { name: "Sign in" }).click();
    await signedIn(p, email);
    return {};
  },
  async grant({ who, email, role }) {
    const p = await page(who);
    await go(p, "#/admin");
    await p.getByLabel("Email contains").fill(email);
    await p.getByRole("button", { name: "Find users" }).click();
    await p.getByLabel("Role for " + email).selectOption(role);
    await p.getByRole("button", { name: "Grant" }).click();
    await toastSays(p, /is now/);
    return {};
  },
  async create_event({ who, name }) {
    const p = await page(who);
    await go(p, "#/console/new");
    await p.fill("[name=name]", name);
    await p.fill("[name=description]", "Two stages by the water");
    await p.fill("[name=venue]", "Pier 4");
    await p.fill("[name=starts_at]", "2031-06-01T18:00");
    await p.fill("[name=ends_at]", "2031-06-01T23:30");
    await p.locator("[name=tier_name]").nth(0).fill("Free entry");
    await p.locator("[name=tier_price]").nth(0).fill("0");
    await p.getByRole("button", { name: "Add a tier" }).click();
    await p.locator("[name=tier_name]").nth(1).fill("Standard");
    await p.locator("[name=tier_price]").nth(1).fill("25.00");
    await p.locator("[name=tier_capacity]").nth(1).fill("50");
    await p.getByRole("button", { name: "Create draft" }).click();
    await p.waitForURL(/#\/console\/event\/[\w-]+$/);
    const id = p.url().split("/").pop();
    await p.getByRole("button", { name: "Move to active" }).click();
    await p.locator(".badge.active").first().waitFor();
    return { id };
  },
  async enrollment_code({ who, event, gate }) {
    const p = await page(who);
    await go(p, "#/console/event/" + event + "/devices");
    await p.getByLabel("Gate label").fill(gate);
    await p.getByRole("button", { name: "Create enrollment code" }).click();
    await p.locator("#enroll-code").waitFor();
    await p.locator("img.qr").waitFor();
    return { code: (await p.locator("#enroll-code").textContent()).trim() };
  },
  async add_staff({ who, event, email }) {
    const p = await page(who);
    await go(p, "#/console/event/" + event + "/staff");
    await p.getByLabel("Staff member's email").fill(email);
    await p.getByRole("button", { name: "Add to roster" }).click();
    await toastSays(p, /is on the roster/);
    await p.locator("#roster td", { hasText: email }).waitFor();
    return { rows: await p.locator("#roster tbody tr").count() };
  },
  async remove_staff({ who, event, email }) {
    const p = await page(who);
    await go(p, "#/console/event/" + event + "/staff");
    p.once("dialog", (d) => d.accept());
    await p.locator("[data-remove='" + email + "']").click();
    await toastSays(p, /removed from the roster/);
    await p.locator("#roster td", { hasText: email }).waitFor({ state: "detached" });
    return { rows: await p.locator("#roster tbody tr").count() };
  },
  async reserve({ who, event, tier }) {
    const p = await page(who);
    await go(p, "#/event/" + event);
    const select = p.getByLabel("Tier");
    const option = await select.locator("option", { hasText: tier }).getAttribute("value");
    await select.selectOption(option);
    await p.getByLabel("Quantity").fill("1");
    await p.getByRole("button", { name: "Reserve and pay" }).click();
    await p.waitForURL(/#\/orders\//);
    await p.locator("#order-status").waitFor();
    return { order: p.url().split("/").pop(), status: await p.locator("#order-status").textContent() };
  },
  async pay_manual({ who }) {
    const p = await page(who);
    await p.getByRole("button", { name: /Pay at the box office/ }).click();
    await toastSays(p, /box office/);
    return {};
  },
  async pay_card({ who, number }) {
    const p = await page(who);
    const card = p.locator("#card-element");
    await card.locator("input").first().waitFor();
    await card.locator("[placeholder=number]").fill(number);
    await card.locator("[placeholder=exp_month]").fill("12");
    await card.locator("[placeholder=exp_year]").fill("34");
    await card.locator("[placeholder=cvc]").fill("123");
    await card.locator("[placeholder=postal_code]").fill("10115");
    await p.getByRole("button", { name: "Pay by card" }).click();
    await p.waitForURL(/#\/tickets$/, { timeout: 20000 });
    return {};
  },
  async ticket_qr({ who, file, shot }) {
    const p = await page(who);
    await go(p, "#/tickets");
    const img = p.locator("article.ticket img.qr").first();
    await img.waitFor();
    await p.waitForFunction(() => {
      const i = document.querySelector("article.ticket img.qr");
      return i && i.complete && i.naturalWidth > 0;
    });
    const ticket = await img.locator("xpath=ancestor::article").getAttribute("data-ticket");
    const path = join(work, file);
    await img.screenshot({ path });
    if (shot) await p.screenshot({ path: join(shots, shot), fullPage: true });
    return { ticket, png: path, count: await p.locator("article.ticket img.qr").count() };
  },
  async order_action({ who, event, email, action }) {
    const p = await page(who);
    await go(p, "#/console/event/" + event + "/orders");
    await p.getByLabel("Buyer email contains").fill(email);
    await p.getByRole("button", { name: "Find orders" }).click();
    const button = p.locator("button[data-action=" + action + "]");
    await button.first().waitFor();
    if (action === "refunded") p.once("dialog", (d) => d.accept());
    await button.first().click();
    await toastSays(p, action === "paid" ? /confirmed/ : /Refunded/);
    return {};
  },
  async box_office({ who, event, tier, quantity, holder, method }) {
    const p = await page(who);
    await go(p, "#/console/event/" + event);
    const form = p.locator("section", { has: p.locator("#box-h") });
    await form.getByLabel("Tier").selectOption({ label: tier });
    await form.getByLabel("Quantity").fill(String(quantity));
    await form.getByLabel("Name on tickets").fill(holder);
    await form.getByLabel("Paid by").selectOption(method);
    await form.getByRole("button", { name: "Sell at the box office" }).click();
    return { toast: await toastSays(p, /^Sold /) };
  },
  // Opens the audit trail of the tickets of the order found by buyer email.
  async audit_trail({ who, event, email }) {
    const p = await page(who);
    await go(p, "#/console/event/" + event + "/orders");
    await p.getByLabel("Buyer email contains").fill(email);
    await p.getByRole("button", { name: "Find orders" }).click();
    await p.getByRole("button", { name: "Tickets", exact: true }).first().click();
    // By its accessible name (its caption): the orders table holds it, so
    // "a table with that caption" would match both.
    const trail = p.getByRole("table", { name: "Audit trail" });
    await trail.waitFor();
    const rows = await trail.locator("tbody tr").evaluateAll((trs) => trs.map((tr) => [...tr.querySelectorAll("td")].map((td) => td.textContent.trim())));
    return { rows };
  },
  async revoke_device({ who, event, device }) {
    const p = await page(who);
    await go(p, "#/console/event/" + event + "/devices");
    p.once("dialog", (d) => d.accept());
    await p.locator("[data-revoke='" + device + "']").click();
    await toastSays(p, /Revoked/);
    await p.locator("[data-revoke='" + device + "']").waitFor({ state: "detached" });
    return {};
  },
  async open_doors({ who, event }) {
    const p = await page(who);
    await go(p, "#/console/event/" + event + "/doors");
    await p.locator(".live-state", { hasText: "Live" }).waitFor({ timeout: 15000 });
    return {};
  },
  // Waits until the doors page (left open) shows `checked_in` admitted
  // tickets; answers how long that took after the command arrived.
  async wait_checked_in({ who, checked_in }) {
    const p = await page(who);
    const start = Date.now();
    await p.waitForFunction((n) => {
      const el = document.getElementById("checked-in");
      return el && el.textContent.startsWith(n + " /");
    }, checked_in, { timeout: 30000, polling: 20 });
    return { ms: Date.now() - start };
  },
  async wait_device({ who, device, state }) {
    const p = await page(who);
    const start = Date.now();
    await p.locator("[data-device='" + device + "']", { hasText: state }).waitFor({ timeout: 60000 });
    return { ms: Date.now() - start };
  },
  async text({ who, selector }) {
    const p = await page(who);
    return { text: await p.locator(selector).first().textContent() };
  },
  async goto({ who, hash, phone }) {
    const p = await page(who, phone);
    await go(p, hash);
    await p.waitForTimeout(300);
    return {};
  },
  async wait_for({ who, selector, text }) {
    const p = await page(who);
    await p.locator(selector, text ? { hasText: text } : {}).first().waitFor({ timeout: 15000 });
    return {};
  },
  async screenshot({ who, name, full }) {
    const p = await page(who);
    await p.evaluate(() => {
      const t = document.getElementById("toast");
      t.textContent = "";
      t.className = "";
    });
    await p.screenshot({ path: join(shots, name), fullPage: !!full });
    return { path: join(shots, name) };
  },
  async axe({ who }) {
    const p = await page(who);
    const r = await new AxeBuilder({ page: p }).withTags(["wcag2a", "wcag2aa", "wcag21a", "wcag21aa"]).analyze();
    const serious = r.violations.filter((v) => v.impact === "serious" || v.impact === "critical");
    return { url: p.url(), serious: serious.map((v) => v.id + ": " + v.help + " (" + v.nodes.map((n) => n.target.join(" ")).slice(0, 3).join(", ") + ")"), checked: r.passes.length };
  },
  async keyboard({ who }) {
    // Tab through the page: every focusable control is reached and shows focus.
    const p = await page(who);
    const seen = [];
    for (let i = 0; i < 12; i++) {
      await p.keyboard.press("Tab");
      seen.push(await p.evaluate(() => {
        const el = document.activeElement;
        return el ? el.tagName + ":" + (el.getAttribute("href") || el.textContent || "").trim().slice(0, 30) : "none";
      }));
    }
    return { seen };
  },
  async csp_blocks_inline({ who }) {
    // An injected inline script must not run under the page's CSP.
    const p = await page(who);
    const ran = await p.evaluate(async () => {
      window.__inline = false;
      const s = document.createElement("script");
      s.textContent = "window.__inline = true";
      document.body.append(s);
      await new Promise((r) => setTimeout(r, 100));
      return window.__inline;
    });
    return { ran };
  },
  async download_report({ who, type }) {
    const p = await page(who);
    const [download] = await Promise.all([p.waitForEvent("download"), p.getByRole("button", { name: "Download " + type + " (CSV)" }).click()]);
    const path = join(work, type + ".csv");
    await download.saveAs(path);
    const { readFileSync } = await import("node:fs");
    return { name: download.suggestedFilename(), csv: readFileSync(path, "utf8") };
  },
  async comp({ who, event, name }) {
    const p = await page(who);
    await go(p, "#/console/event/" + event);
    await p.getByLabel("Guest name").fill(name);
    await p.getByRole("button", { name: "Issue a comp ticket" }).click();
    const img = p.locator("#comp-qr");
    await img.waitFor();
    await p.waitForFunction(() => {
      const i = document.getElementById("comp-qr");
      return i && i.complete && i.naturalWidth > 0;
    });
    const path = join(work, "comp.png");
    await img.screenshot({ path });
    return { png: path, ticket: await img.getAttribute("data-ticket") };
  },
  async transfer({ who, to }) {
    const p = await page(who);
    await go(p, "#/tickets");
    await p.locator("article.ticket summary", { hasText: "Transfer" }).first().click();
    await p.getByLabel("Transfer to (their account email)").first().fill(to);
    await p.getByRole("button", { name: "Transfer", exact: true }).first().click();
    await toastSays(p, /Transferred/);
    return {};
  },
  async resell({ who, price }) {
    const p = await page(who);
    await go(p, "#/tickets");
    await p.locator("article.ticket summary", { hasText: "Resell" }).first().click();
    await p.locator("article.ticket [name=price]").first().fill(String(price));
    await p.getByRole("button", { name: "List for resale" }).first().click();
    const t = p.locator("#toast");
    await t.filter({ hasText: /./ }).waitFor({ timeout: 15000 });
    return { text: await t.textContent(), error: /error/.test((await t.getAttribute("class")) || "") };
  },
  async problems() {
    return { problems };
  },
  async close() {
    await context.close();
    return {};
  },
};

const rl = readline.createInterface({ input: process.stdin });
for await (const line of rl) {
  let msg;
  try {
    msg = JSON.parse(line);
  } catch {
    continue;
  }
  const f = commands[msg.cmd];
  try {
    if (!f) throw new Error("unknown command " + msg.cmd);
    const out = await f(msg);
    process.stdout.write(JSON.stringify({ ok: true, ...out }) + "\n");
    if (msg.cmd === "close") break;
  } catch (e) {
    let shot = null;
    try {
      const p = pages.get(msg.who);
      if (p) {
        shot = join(process.env.FAIL_DIR || work, "failure-" + msg.cmd + ".png");
        await p.screenshot({ path: shot, fullPage: true });
      }
    } catch {
      /* the failure itself is what matters */
    }
    process.stdout.write(JSON.stringify({ ok: false, error: String(e && e.stack ? e.stack : e), screenshot: shot }) + "\n");
  }
}
process.exit(0);
