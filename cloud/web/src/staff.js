// The event's staff roster (organizer of the event, or an admin): who may
// work its door and set a scanner up for it with their own account. Calls
// GET/POST /events/{id}/staff and DELETE /events/{id}/staff/{user_id}.

import { get, post, del } from "./api.js";
import { h, clear, when, toast, field, onSubmit, table } from "./ui.js";
import { subnav } from "./organizer.js";

export async function staffView(main, id) {
  const e = await get("/events/{id}", { path: { id } });
  const list = h("div", { id: "roster", "aria-live": "polite" });
  const form = h(
    "form",
    { class: "inline", id: "add-staff" },
    field("Staff member's email", { name: "email", type: "email", required: true, autocomplete: "off" }, "They need an account with the staff role (an admin grants it)."),
    h("button", { type: "submit" }, "Add to roster"),
  );
  async function load() {
    const roster = await get("/events/{id}/staff", { path: { id } });
    clear(
      list,
      roster.items.length
        ? table(
            "Staff roster (" + roster.items.length + ")",
            ["Email", "Name", "Added", ""],
            roster.items.map((s) => {
              const b = h("button", { type: "button", class: "danger", "data-remove": s.email }, "Remove");
              b.addEventListener("click", async () => {
                if (!confirm("Remove " + s.email + " from the roster? Devices they enrolled keep working until you revoke them on the devices page.")) return;
                try {
                  await del("/events/{id}/staff/{user_id}", { path: { id, user_id: s.user_id } });
                  toast(s.email + " removed from the roster.");
                  await load();
                } catch (err) {
                  toast(err.message, "error");
                }
              });
              return [s.email, s.display_name, when(s.added_at), b];
            }),
          )
        : h("p", {}, "Nobody on the roster yet."),
    );
  }
  onSubmit(form, async (d) => {
    const s = await post("/events/{id}/staff", { path: { id }, body: { email: String(d.get("email")).trim() } });
    toast(s.email + " is on the roster: they can now sign in to the scanner app and pick this event.");
    form.reset();
    await load();
  });
  clear(
    main,
    h("h1", {}, "Staff · " + e.name),
    subnav(id, "/staff"),
    h("section", { "aria-labelledby": "add-staff-h" }, h("h2", { id: "add-staff-h" }, "Add door staff"), form),
    h("section", { "aria-labelledby": "roster-h" }, h("h2", { id: "roster-h" }, "Roster"), list),
  );
  await load();
}
