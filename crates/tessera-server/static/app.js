// Progressive enhancement only: every form works without this file.
// Forms marked data-confirm ask before submitting (destructive actions).
document.addEventListener("submit", (event) => {
  const form = event.target;
  const question = form.getAttribute && form.getAttribute("data-confirm");
  if (question && !window.confirm(question)) {
    event.preventDefault();
  }
});

// A response editor says how large its text may be: a larger one is not sent (the server
// could not keep it), and the labeler keeps their work.
document.addEventListener("submit", (event) => {
  const form = event.target;
  const editor = form.querySelector && form.querySelector("textarea[data-max-bytes]");
  if (!editor || event.defaultPrevented) return;
  const max = Number(editor.getAttribute("data-max-bytes"));
  const size = new Blob([editor.value]).size;
  const message = document.getElementById("response-size");
  if (size > max) {
    event.preventDefault();
    message.textContent = `The response is ${Math.ceil(size / 1024)} KiB; it may be at most ${Math.floor(max / 1024)} KiB of JSON. Nothing was sent, and your text is still here.`;
    message.hidden = false;
  } else {
    message.hidden = true;
  }
});

// The lease on a labeler's task: a countdown beside "Reserved for you until …", and a warning
// near the end (and once it ended) pointing at Extend. It counts from the time left when the
// page was made, so a wrong clock in the browser does not matter.
(() => {
  const lease = document.getElementById("lease");
  if (!lease) return;
  const countdown = document.getElementById("lease-countdown");
  const warning = document.getElementById("lease-warning");
  const length = Number(lease.getAttribute("data-lease-ms"));
  const ends = performance.now() + Number(lease.getAttribute("data-lease-left-ms"));
  // The last quarter of the lease, at most two minutes.
  const warnAt = Math.min(120000, length / 4);
  const clock = (ms) => {
    const s = Math.ceil(ms / 1000);
    return `${Math.floor(s / 60)}:${String(s % 60).padStart(2, "0")}`;
  };
  let timer = null;
  const tick = () => {
    const left = ends - performance.now();
    if (left <= 0) {
      countdown.textContent = " (ended)";
      warning.textContent = "Your reservation has ended. You can still submit while nobody else takes the task; press Extend to reserve it again.";
      warning.hidden = false;
      lease.classList.add("ended");
      clearInterval(timer);
      return;
    }
    countdown.textContent = ` (${clock(left)} left)`;
    if (left <= warnAt) {
      warning.textContent = `Your reservation ends in ${clock(left)}. Press Extend to keep the task.`;
      warning.hidden = false;
    }
  };
  tick();
  timer = setInterval(tick, 500);
})();

// Every form that posts disables its buttons while its request is pending, so a double click
// sends one request (forms marked data-submit-once, like Add key, are also answered by the
// server with the first request's result). The pressed button's name and value still go with
// the form. Registered after the data-confirm handler, so a cancelled confirmation leaves the
// buttons enabled.
document.addEventListener("submit", (event) => {
  const form = event.target;
  if (event.defaultPrevented || !form.getAttribute || (form.getAttribute("method") || "").toLowerCase() !== "post") return;
  if (form.dataset.pending === "1") {
    event.preventDefault();
    return;
  }
  form.dataset.pending = "1";
  const pressed = event.submitter;
  if (pressed && pressed.name) {
    const carry = document.createElement("input");
    carry.type = "hidden";
    carry.name = pressed.name;
    carry.value = pressed.value;
    carry.dataset.carried = "1";
    form.appendChild(carry);
  }
  for (const button of form.querySelectorAll("button")) {
    button.disabled = true;
    button.setAttribute("aria-busy", "true");
  }
});
// Back to a page from the browser's cache: its forms can be sent again.
window.addEventListener("pageshow", () => {
  for (const form of document.querySelectorAll("form[data-pending]")) {
    delete form.dataset.pending;
    for (const carried of form.querySelectorAll("input[data-carried]")) carried.remove();
    for (const button of form.querySelectorAll("button")) {
      button.disabled = false;
      button.removeAttribute("aria-busy");
    }
  }
});

// A draft survives the end of a session: what a signed-in form was sending is kept in this
// tab (never passwords, never hidden fields such as CSRF tokens). When that request ends on the
// sign-in page (the session had ended), signing in returns to the form's page and fills the
// form in again; any other outcome drops the draft.
(() => {
  const KEY = "tessera-draft";
  const signedIn = document.querySelector("details.profile-menu") !== null;
  const read = () => {
    try { return JSON.parse(sessionStorage.getItem(KEY) || "null"); } catch { return null; }
  };
  document.addEventListener("submit", (event) => {
    const form = event.target;
    if (!signedIn || event.defaultPrevented || (form.getAttribute("method") || "").toLowerCase() !== "post") return;
    const fields = [];
    for (const el of form.elements) {
      if (!el.name || el.disabled || ["password", "hidden", "file", "submit", "button"].includes(el.type)) continue;
      if ((el.type === "checkbox" || el.type === "radio") && !el.checked) continue;
      fields.push([el.name, el.value, el.type]);
    }
    if (fields.length === 0) return;
    const draft = { page: location.pathname + location.search, action: form.getAttribute("action"), fields, state: "sent" };
    try { sessionStorage.setItem(KEY, JSON.stringify(draft)); } catch { /* storage full or off */ }
  }, true);
  const draft = read();
  if (!draft) return;
  const login = document.querySelector('form[action="/login"]');
  if (login && !signedIn) {
    // The request was turned away for want of a session: sign in, then back to the form.
    const next = login.querySelector('input[name="next"]');
    if (next) next.value = draft.page;
    draft.state = "bounced";
    sessionStorage.setItem(KEY, JSON.stringify(draft));
    const note = document.createElement("p");
    note.className = "warning";
    note.id = "draft-note";
    note.textContent = "Your session ended. Sign in again: what you were sending is kept, and you return to it.";
    login.parentNode.insertBefore(note, login);
    return;
  }
  sessionStorage.removeItem(KEY);
  if (draft.state !== "bounced" || location.pathname + location.search !== draft.page) return;
  const form = [...document.querySelectorAll("form")].find((f) => f.getAttribute("action") === draft.action);
  if (!form) return;
  for (const el of form.elements) {
    const saved = draft.fields.filter(([name]) => name === el.name);
    if (saved.length === 0) continue;
    if (el.type === "checkbox" || el.type === "radio") el.checked = saved.some(([, value]) => value === el.value);
    else el.value = saved[0][1];
  }
  const note = document.createElement("p");
  note.className = "warning";
  note.id = "draft-restored";
  note.textContent = "Your draft is back. Check it and send it again.";
  form.parentNode.insertBefore(note, form);
})();

// Buttons marked data-copy copy the text of the element with that id.
document.addEventListener("click", (event) => {
  const button = event.target.closest && event.target.closest("[data-copy]");
  if (!button) return;
  const source = document.getElementById(button.getAttribute("data-copy"));
  if (source && navigator.clipboard) {
    navigator.clipboard.writeText(source.textContent.trim()).then(() => { button.textContent = "Copied"; });
  }
});

// Buttons shown disabled for a while (Resend while its interval runs) work again once it has
// run out, without reloading the page.
for (const button of document.querySelectorAll("button[data-enable-after-ms]")) {
  const wait = Number(button.getAttribute("data-enable-after-ms")) || 0;
  setTimeout(() => {
    button.disabled = false;
    button.textContent = button.getAttribute("data-enabled-label") || button.textContent;
    button.removeAttribute("title");
  }, wait);
}

// The profile menu is a <details>: it opens without JavaScript; with it, Escape and a click
// elsewhere close it, as a menu should.
document.addEventListener("keydown", (event) => {
  if (event.key !== "Escape") return;
  for (const menu of document.querySelectorAll("details.profile-menu[open]")) {
    menu.open = false;
    menu.querySelector("summary").focus();
  }
});
document.addEventListener("click", (event) => {
  for (const menu of document.querySelectorAll("details.profile-menu[open]")) {
    if (!menu.contains(event.target)) menu.open = false;
  }
});

// On a phone, tables stack as cards (style.css); each cell is then labelled with its column's
// name, taken from the table's header.
for (const table of document.querySelectorAll("table.list")) {
  const names = [...table.querySelectorAll("thead th")].map((th) => th.textContent.trim());
  for (const row of table.querySelectorAll("tbody tr")) {
    [...row.children].forEach((cell, i) => {
      if (names[i] && !cell.hasAttribute("data-label")) cell.setAttribute("data-label", names[i]);
    });
  }
}

// Times: the server writes each moment as <time datetime="…Z">YYYY-MM-DD HH:MM:SS UTC</time>.
// Here it is shown in the reader's own zone in the same format, with the zone's abbreviation
// (or offset), and the UTC text kept on hover. Without this script the UTC text stays.
(() => {
  const format = new Intl.DateTimeFormat("en-US", {
    year: "numeric", month: "2-digit", day: "2-digit",
    hour: "2-digit", minute: "2-digit", second: "2-digit",
    hourCycle: "h23", timeZoneName: "short", numberingSystem: "latn",
  });
  for (const el of document.querySelectorAll("time[datetime]")) {
    const at = new Date(el.getAttribute("datetime"));
    if (Number.isNaN(at.getTime())) continue;
    const part = Object.fromEntries(format.formatToParts(at).map((p) => [p.type, p.value]));
    el.title = el.textContent.trim();
    el.textContent = `${part.year}-${part.month}-${part.day} ${part.hour}:${part.minute}:${part.second} ${part.timeZoneName}`;
  }
})();
