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

// Forms marked data-submit-once (Add key) disable their buttons once sent, so a double click
// sends one request (the server also answers a repeated form with the first one's result).
// Registered after the data-confirm handler, so a cancelled confirmation leaves them enabled.
document.addEventListener("submit", (event) => {
  const form = event.target;
  if (event.defaultPrevented || !form.hasAttribute || !form.hasAttribute("data-submit-once")) return;
  if (form.dataset.pending === "1") {
    event.preventDefault();
    return;
  }
  form.dataset.pending = "1";
  for (const button of form.querySelectorAll("button")) {
    button.disabled = true;
    button.setAttribute("aria-busy", "true");
  }
});
// Back to a page from the browser's cache: its forms can be sent again.
window.addEventListener("pageshow", () => {
  for (const form of document.querySelectorAll("form[data-submit-once]")) {
    delete form.dataset.pending;
    for (const button of form.querySelectorAll("button")) {
      button.disabled = false;
      button.removeAttribute("aria-busy");
    }
  }
});

// Buttons marked data-copy copy the text of the element with that id.
document.addEventListener("click", (event) => {
  const button = event.target.closest && event.target.closest("[data-copy]");
  if (!button) return;
  const source = document.getElementById(button.getAttribute("data-copy"));
  if (source && navigator.clipboard) {
    navigator.clipboard.writeText(source.textContent.trim()).then(() => { button.textContent = "Copied"; });
  }
});

// The box annotator on a labeler's imageannotation task: drag on the image to draw a box with
// the chosen label; the boxes live in the response JSON (the textarea stays the source of
// truth, so editing it by hand still works and redraws the boxes).
(() => {
  const root = document.getElementById("annotator");
  if (!root) return;
  const image = document.getElementById("annotator-image");
  const canvas = document.getElementById("annotator-canvas");
  const select = document.getElementById("annotator-label");
  const editor = document.querySelector("textarea[name=response]");
  const context = canvas.getContext("2d");
  let start = null;

  const read = () => {
    try {
      const value = JSON.parse(editor.value);
      if (value && Array.isArray(value.annotations)) return value;
    } catch (_) { /* fall through to a fresh response */ }
    return { annotations: [], global_attributes: {} };
  };
  const scale = () => (image.naturalWidth || image.width) / (image.clientWidth || 1);
  // Where the pointer is on the canvas, kept inside it (a drag may end past the image's edge).
  const position = (event) => {
    const rect = canvas.getBoundingClientRect();
    const clamp = (v, max) => Math.min(Math.max(v, 0), max);
    return { x: clamp(event.clientX - rect.left, rect.width), y: clamp(event.clientY - rect.top, rect.height) };
  };
  const draw = (preview) => {
    canvas.width = image.clientWidth;
    canvas.height = image.clientHeight;
    context.clearRect(0, 0, canvas.width, canvas.height);
    context.lineWidth = 2;
    context.font = "12px sans-serif";
    const s = scale();
    for (const box of read().annotations.filter((a) => a.type === "box")) {
      context.strokeStyle = "#3b5bdb";
      context.strokeRect(box.left / s, box.top / s, box.width / s, box.height / s);
      context.fillStyle = "#3b5bdb";
      context.fillText(box.label || "", box.left / s + 3, box.top / s + 13);
    }
    if (preview) {
      context.strokeStyle = "#e8590c";
      context.strokeRect(preview.x, preview.y, preview.w, preview.h);
    }
  };
  const rectangle = (a, b) => ({
    x: Math.min(a.x, b.x), y: Math.min(a.y, b.y), w: Math.abs(a.x - b.x), h: Math.abs(a.y - b.y),
  });

  canvas.addEventListener("mousedown", (event) => { start = position(event); });
  canvas.addEventListener("mousemove", (event) => {
    if (start) draw(rectangle(start, position(event)));
  });
  window.addEventListener("mouseup", (event) => {
    if (!start) return;
    const box = rectangle(start, position(event));
    start = null;
    if (box.w < 3 || box.h < 3) { draw(); return; }
    const s = scale();
    // The box's edges in the image's pixels, never past its size.
    const edge = (v, max) => Math.min(Math.round(v * s), max || Infinity);
    const [w, h] = [image.naturalWidth, image.naturalHeight];
    const [left, top] = [edge(box.x, w), edge(box.y, h)];
    const [right, bottom] = [edge(box.x + box.w, w), edge(box.y + box.h, h)];
    const response = read();
    response.annotations.push({
      type: "box", label: select.value, left, top, width: right - left, height: bottom - top,
    });
    editor.value = JSON.stringify(response, null, 2);
    draw();
  });
  document.getElementById("annotator-clear").addEventListener("click", () => {
    const response = read();
    response.annotations = response.annotations.filter((a) => a.type !== "box");
    editor.value = JSON.stringify(response, null, 2);
    draw();
  });
  editor.addEventListener("input", () => draw());
  window.addEventListener("resize", () => draw());
  if (image.complete) draw(); else image.addEventListener("load", () => draw());
})();

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

// An attachment image that fails to load (a missing object, an expired signed link) says so
// and fills in the reason for reporting the task, instead of leaving a broken image.
(() => {
  const image = document.getElementById("annotator-image");
  const notice = document.getElementById("attachment-load-failed");
  if (!image || !notice) return;
  const failed = () => {
    notice.hidden = false;
    const reason = document.getElementById("error-reason");
    if (reason && !reason.value) reason.value = "The attachment could not be read (it did not load).";
  };
  if (image.complete && image.naturalWidth === 0) failed();
  image.addEventListener("error", failed);
})();

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
