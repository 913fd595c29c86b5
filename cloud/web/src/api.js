// The one fetch wrapper every view uses: the same REST API as any client.
// Tokens live in this tab's sessionStorage and travel only as
// `Authorization: Bearer` (no cookie, so no CSRF); an expired access token
// is refreshed once with the refresh token.

const KEY = "gatehouse.session";

export class ApiError extends Error {
  constructor(status, code, message) {
    super(message);
    this.status = status;
    this.code = code;
  }
}

export function session() {
  try {
    return JSON.parse(sessionStorage.getItem(KEY)) || null;
  } catch {
    return null;
  }
}

export function saveSession(answer) {
  const s = {
    access: answer.access_token,
    refresh: answer.refresh_token,
    user: answer.user,
  };
  sessionStorage.setItem(KEY, JSON.stringify(s));
  return s;
}

export function clearSession() {
  sessionStorage.removeItem(KEY);
}

async function problem(resp) {
  let body = null;
  try {
    body = await resp.json();
  } catch {
    body = null;
  }
  const e = body && body.error;
  return new ApiError(
    resp.status,
    (e && e.code) || "http_" + resp.status,
    (e && e.message) || resp.statusText || "request failed",
  );
}

async function refresh() {
  const s = session();
  if (!s || !s.refresh) return false;
  const resp = await fetch("/auth/refresh", {
    method: "POST",
    headers: { "Content-Type": "application/json" },
    body: JSON.stringify({ refresh_token: s.refresh }),
  });
  if (!resp.ok) {
    clearSession();
    return false;
  }
  saveSession(await resp.json());
  return true;
}

// A raw response for `path` (JSON body if given), with the token.
export async function raw(method, path, body, opts = {}) {
  const s = session();
  const headers = {};
  if (s && s.access) headers.Authorization = "Bearer " + s.access;
  if (body !== undefined) headers["Content-Type"] = "application/json";
  const resp = await fetch(path, {
    method,
    headers,
    body: body === undefined ? undefined : JSON.stringify(body),
    signal: opts.signal,
  });
  if (resp.status === 401 && !opts.retried && s && s.refresh && !path.startsWith("/auth/")) {
    if (await refresh()) return raw(method, path, body, { ...opts, retried: true });
  }
  if (!resp.ok) throw await problem(resp);
  return resp;
}

// JSON in, JSON out; throws ApiError with the API's code and message.
export async function api(method, path, body) {
  const resp = await raw(method, path, body);
  if (resp.status === 204) return null;
  const type = resp.headers.get("content-type") || "";
  return type.includes("json") ? resp.json() : resp.text();
}

// An object URL of an image the API draws (QR codes).
export async function imageUrl(method, path, body) {
  const resp = await raw(method, path, body);
  return URL.createObjectURL(await resp.blob());
}

// Every item of a paginated list (at most `max`).
export async function all(path, max = 2000) {
  const out = [];
  let cursor = null;
  const sep = path.includes("?") ? "&" : "?";
  while (out.length < max) {
    const page = await api("GET", path + sep + "limit=100" + (cursor ? "&cursor=" + cursor : ""));
    out.push(...page.items);
    if (!page.next_cursor) break;
    cursor = page.next_cursor;
  }
  return out;
}

// Server-sent events read with fetch (so the token goes in a header, not
// the URL), reconnecting after a drop. `onEvent(name, data)`; returns a
// stop function.
export function stream(path, onEvent, onState) {
  const ctl = new AbortController();
  let stopped = false;
  async function run() {
    let delay = 500;
    while (!stopped) {
      try {
        const resp = await raw("GET", path, undefined, { signal: ctl.signal });
        onState && onState("live");
        delay = 500;
        const reader = resp.body.pipeThrough(new TextDecoderStream()).getReader();
        let buf = "";
        for (;;) {
          const { value, done } = await reader.read();
          if (done) break;
          buf += value;
          let at;
          while ((at = buf.indexOf("\n\n")) >= 0) {
            const block = buf.slice(0, at);
            buf = buf.slice(at + 2);
            let name = "message";
            const data = [];
            for (const line of block.split("\n")) {
              if (line.startsWith("event:")) name = line.slice(6).trim();
              else if (line.startsWith("data:")) data.push(line.slice(5).replace(/^ /, ""));
            }
            if (data.length) onEvent(name, data.join("\n"));
          }
        }
      } catch (e) {
        if (stopped) return;
        if (e instanceof ApiError && (e.status === 403 || e.status === 404)) {
          onState && onState("refused", e);
          return;
        }
      }
      if (stopped) return;
      onState && onState("reconnecting");
      await new Promise((r) => setTimeout(r, delay));
      delay = Math.min(delay * 2, 5000);
    }
  }
  run();
  return () => {
    stopped = true;
    ctl.abort();
  };
}
