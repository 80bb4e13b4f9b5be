// The labeler's tools on the labeling pages. Progressive enhancement only: the response form
// works without this file (the choice buttons are sent as form fields, the JSON editor is the
// response). With it, the tools write into the JSON editor, which stays the source of truth:
// editing it by hand updates the tools, and what is submitted is what it shows.

// Each label's colour comes from the stylesheet's .swatch-N classes (one place for the palette,
// and inline styles are not allowed by the page's policy).
const swatchColours = new Map();
function swatchColour(index) {
  if (!swatchColours.has(index)) {
    const probe = document.createElement("span");
    probe.className = `swatch swatch-${index}`;
    document.body.appendChild(probe);
    swatchColours.set(index, getComputedStyle(probe).backgroundColor);
    probe.remove();
  }
  return swatchColours.get(index);
}
const UNKNOWN_LABEL_COLOUR = "#868e96";

// The response JSON in the editor, or null when it is not a JSON object.
function readResponse(editor) {
  try {
    const value = JSON.parse(editor.value);
    return value && typeof value === "object" && !Array.isArray(value) ? value : null;
  } catch (_) {
    return null;
  }
}

// Draws `boxes` (image pixels) on `canvas` over `image`: each in its label's colour with the
// label on a tab, the selected one thicker with corner handles.
function drawBoxes(canvas, image, boxes, colourOf, selected, preview) {
  const context = canvas.getContext("2d");
  canvas.width = image.clientWidth;
  canvas.height = image.clientHeight;
  context.clearRect(0, 0, canvas.width, canvas.height);
  const sx = (image.naturalWidth || image.clientWidth) / (image.clientWidth || 1);
  const sy = (image.naturalHeight || image.clientHeight) / (image.clientHeight || 1);
  context.font = "12px system-ui, sans-serif";
  boxes.forEach((box, i) => {
    const [x, y, w, h] = [box.left / sx, box.top / sy, box.width / sx, box.height / sy];
    const colour = colourOf(box.label);
    context.strokeStyle = colour;
    context.lineWidth = i === selected ? 3 : 2;
    context.setLineDash(i === selected ? [6, 3] : []);
    context.strokeRect(x, y, w, h);
    context.setLineDash([]);
    const text = `${i + 1} ${box.label || ""}`;
    const tab = context.measureText(text).width + 8;
    context.fillStyle = colour;
    context.fillRect(x, Math.max(y - 16, 0), tab, 16);
    context.fillStyle = "#fff";
    context.fillText(text, x + 4, Math.max(y - 16, 0) + 12);
    if (i === selected) {
      for (const [hx, hy] of [[x, y], [x + w, y], [x, y + h], [x + w, y + h]]) {
        context.fillStyle = "#fff";
        context.fillRect(hx - 4, hy - 4, 8, 8);
        context.strokeRect(hx - 4, hy - 4, 8, 8);
      }
    }
  });
  if (preview) {
    context.strokeStyle = preview.colour;
    context.lineWidth = 2;
    context.setLineDash([4, 4]);
    context.strokeRect(preview.x, preview.y, preview.w, preview.h);
    context.setLineDash([]);
  }
}

// Redraws once the image has its size, and again whenever the window changes it.
function whenSized(image, draw) {
  if (image.complete && image.naturalWidth) draw(); else image.addEventListener("load", () => draw());
  window.addEventListener("resize", () => draw());
  if (window.ResizeObserver) new ResizeObserver(() => draw()).observe(image);
}

// Choice buttons (categories, taxonomies, a comparison's choices): picking one writes the
// answer into the response JSON; a hand edit of the JSON picks the buttons it names.
(() => {
  const editor = document.querySelector("textarea[name=response]");
  const groups = Array.from(document.querySelectorAll("fieldset.choice-group"));
  if (!editor || !groups.length) return;
  const inputs = (group) => Array.from(group.querySelectorAll("input"));
  const slot = (response, field) => {
    if (field.startsWith("taxonomy:")) {
      const taxonomies = response.taxonomies && typeof response.taxonomies === "object" ? response.taxonomies : {};
      return taxonomies[field.slice("taxonomy:".length)];
    }
    return response[field];
  };
  const write = () => {
    const response = readResponse(editor);
    if (!response) return; // the labeler is mid-edit: the server applies the picks itself
    for (const group of groups) {
      const field = group.dataset.field;
      const picked = inputs(group).filter((i) => i.checked).map((i) => i.value);
      if (field.startsWith("taxonomy:")) {
        if (!response.taxonomies || typeof response.taxonomies !== "object") response.taxonomies = {};
        response.taxonomies[field.slice("taxonomy:".length)] = picked;
      } else if (group.dataset.multiple) {
        response[field] = picked.length ? picked : null;
      } else {
        response[field] = picked.length ? picked[0] : null;
      }
    }
    editor.value = JSON.stringify(response, null, 2);
  };
  const read = () => {
    const response = readResponse(editor);
    if (!response) return;
    for (const group of groups) {
      const answer = slot(response, group.dataset.field);
      const chosen = Array.isArray(answer) ? answer : answer == null ? [] : [answer];
      for (const input of inputs(group)) input.checked = chosen.includes(input.value);
    }
  };
  for (const group of groups) {
    group.addEventListener("change", write);
    // Enter on a button would send the form's first button (Extend): picking is not sending.
    group.addEventListener("keydown", (event) => {
      if (event.key === "Enter") event.preventDefault();
    });
  }
  editor.addEventListener("input", read);
})();

// The box annotator on an imageannotation task. Pointer events (mouse, touch, pen): drag on
// the image to draw a box with the chosen label, tap a box to select it. Keyboard: see the
// page's "Keyboard" list. Every change can be undone. Boxes are written in the image's own
// pixels, whatever size it is shown at.
(() => {
  const root = document.getElementById("annotator");
  if (!root) return;
  const image = document.getElementById("annotator-image");
  const canvas = document.getElementById("annotator-canvas");
  const editor = document.querySelector("textarea[name=response]");
  const radios = Array.from(root.querySelectorAll("input[name=annotator-label]"));
  const list = document.getElementById("annotator-boxes");
  const count = document.getElementById("annotator-count");
  const empty = document.getElementById("annotator-empty");
  const status = document.getElementById("annotator-status");
  const undoButton = document.getElementById("annotator-undo");
  const arrowMode = document.getElementById("annotator-arrow-mode");
  const colourIndex = new Map(radios.map((r) => [r.value, Number(r.dataset.colourIndex)]));
  const colourOf = (label) => (colourIndex.has(label) ? swatchColour(colourIndex.get(label)) : UNKNOWN_LABEL_COLOUR);

  let selected = -1; // index among the boxes
  let resizing = false;
  let start = null; // { pointerId, x, y } while a drag runs
  let preview = null;
  const history = []; // editor texts before each change, for Undo
  let lastChange = null; // consecutive arrow presses on one box make one undo step

  const currentLabel = () => (radios.find((r) => r.checked) || radios[0]).value;
  const announce = (text) => { status.textContent = text; };
  const fresh = () => ({ annotations: [], global_attributes: {} });
  const response = () => {
    const value = readResponse(editor) || fresh();
    if (!Array.isArray(value.annotations)) value.annotations = [];
    return value;
  };
  const boxesOf = (value) => value.annotations.filter((a) => a && a.type === "box");
  const natural = () => ({ w: image.naturalWidth || image.clientWidth, h: image.naturalHeight || image.clientHeight });

  const render = () => {
    const boxes = boxesOf(response());
    if (selected >= boxes.length) selected = boxes.length - 1;
    drawBoxes(canvas, image, boxes, colourOf, selected, preview);
    list.replaceChildren(...boxes.map((box, i) => {
      const item = document.createElement("li");
      item.className = i === selected ? "selected" : "";
      if (i === selected) item.setAttribute("aria-current", "true");
      const pick = document.createElement("button");
      pick.type = "button";
      pick.className = "box-pick";
      pick.dataset.index = String(i);
      const swatch = document.createElement("span");
      swatch.className = colourIndex.has(box.label) ? `swatch swatch-${colourIndex.get(box.label)}` : "swatch swatch-unknown";
      swatch.setAttribute("aria-hidden", "true");
      pick.append(swatch, `${i + 1}. ${box.label} · ${box.left}, ${box.top} · ${box.width} × ${box.height}`);
      const remove = document.createElement("button");
      remove.type = "button";
      remove.className = "secondary small box-delete";
      remove.dataset.index = String(i);
      remove.textContent = "Delete";
      remove.setAttribute("aria-label", `Delete box ${i + 1} (${box.label})`);
      item.append(pick, remove);
      return item;
    }));
    count.textContent = `(${boxes.length})`;
    empty.hidden = boxes.length > 0;
    undoButton.disabled = history.length === 0;
  };

  // Applies `change` to the box list (it returns what to announce), as one undo step.
  const change = (kind, mutate) => {
    const before = editor.value;
    const value = response();
    const boxes = boxesOf(value);
    const message = mutate(boxes, value);
    if (message === undefined) return;
    const key = `${kind}:${selected}`;
    if (!(lastChange === key && (kind === "move" || kind === "resize"))) history.push(before);
    lastChange = key;
    editor.value = JSON.stringify(value, null, 2);
    render();
    announce(message);
  };
  const removeBox = (value, box) => {
    value.annotations.splice(value.annotations.indexOf(box), 1);
  };

  const addBox = (left, top, width, height) => change("add", (boxes, value) => {
    const label = currentLabel();
    value.annotations.push({ type: "box", label, left, top, width, height });
    selected = boxes.length;
    return `Box ${boxes.length + 1} (${label}) added.`;
  });
  const deleteBox = (index) => change("delete", (boxes, value) => {
    const box = boxes[index];
    if (!box) return undefined;
    removeBox(value, box);
    selected = Math.min(index, boxes.length - 2);
    return `Box ${index + 1} (${box.label}) deleted.`;
  });
  const undo = () => {
    if (!history.length) return;
    editor.value = history.pop();
    lastChange = null;
    render();
    announce("Undone.");
  };
  const select = (index) => {
    const boxes = boxesOf(response());
    selected = boxes.length ? ((index % boxes.length) + boxes.length) % boxes.length : -1;
    lastChange = null;
    render();
    if (selected >= 0) {
      const box = boxes[selected];
      announce(`Box ${selected + 1} (${box.label}) selected: ${box.left}, ${box.top}, ${box.width} × ${box.height}.`);
    }
  };

  // Where the pointer is on the canvas, kept inside it (a drag may end past the image's edge).
  const position = (event) => {
    const rect = canvas.getBoundingClientRect();
    const clamp = (v, max) => Math.min(Math.max(v, 0), max);
    return { x: clamp(event.clientX - rect.left, rect.width), y: clamp(event.clientY - rect.top, rect.height) };
  };
  const rectangle = (a, b) => ({ x: Math.min(a.x, b.x), y: Math.min(a.y, b.y), w: Math.abs(a.x - b.x), h: Math.abs(a.y - b.y) });
  // A rectangle on the canvas in the image's pixels, never past its size.
  const toImage = (r) => {
    const { w, h } = natural();
    const sx = w / (image.clientWidth || 1);
    const sy = h / (image.clientHeight || 1);
    const left = Math.min(Math.round(r.x * sx), w);
    const top = Math.min(Math.round(r.y * sy), h);
    const right = Math.min(Math.round((r.x + r.w) * sx), w);
    const bottom = Math.min(Math.round((r.y + r.h) * sy), h);
    return { left, top, width: right - left, height: bottom - top };
  };
  // The box under a tap: the smallest one containing it (nested boxes stay reachable).
  const boxAt = (point) => {
    const { w } = natural();
    const s = w / (image.clientWidth || 1);
    const [x, y] = [point.x * s, point.y * (natural().h / (image.clientHeight || 1))];
    let found = -1;
    let area = Infinity;
    boxesOf(response()).forEach((b, i) => {
      if (x >= b.left && x <= b.left + b.width && y >= b.top && y <= b.top + b.height && b.width * b.height < area) {
        found = i;
        area = b.width * b.height;
      }
    });
    return found;
  };

  canvas.addEventListener("pointerdown", (event) => {
    if (event.pointerType === "mouse" && event.button !== 0) return;
    event.preventDefault();
    canvas.focus({ preventScroll: true });
    canvas.setPointerCapture(event.pointerId);
    start = { pointerId: event.pointerId, ...position(event) };
  });
  canvas.addEventListener("pointermove", (event) => {
    if (!start || event.pointerId !== start.pointerId) return;
    preview = { ...rectangle(start, position(event)), colour: colourOf(currentLabel()) };
    render();
  });
  const finish = (event, cancelled) => {
    if (!start || event.pointerId !== start.pointerId) return;
    const r = rectangle(start, position(event));
    start = null;
    preview = null;
    if (cancelled) { render(); return; }
    if (r.w < 3 || r.h < 3) {
      const hit = boxAt(r);
      if (hit >= 0) select(hit); else { selected = -1; render(); }
      return;
    }
    const box = toImage(r);
    if (box.width < 1 || box.height < 1) { render(); return; }
    addBox(box.left, box.top, box.width, box.height);
  };
  canvas.addEventListener("pointerup", (event) => finish(event, false));
  canvas.addEventListener("pointercancel", (event) => finish(event, true));

  // Moves (or resizes) the selected box by (dx, dy) image pixels, inside the image.
  const nudge = (dx, dy) => change(resizing ? "resize" : "move", (boxes) => {
    const box = boxes[selected];
    if (!box) return undefined;
    const { w, h } = natural();
    if (resizing) {
      box.width = Math.min(Math.max(box.width + dx, 1), w - box.left);
      box.height = Math.min(Math.max(box.height + dy, 1), h - box.top);
      return `Box ${selected + 1}: ${box.width} × ${box.height}.`;
    }
    box.left = Math.min(Math.max(box.left + dx, 0), Math.max(w - box.width, 0));
    box.top = Math.min(Math.max(box.top + dy, 0), Math.max(h - box.height, 0));
    return `Box ${selected + 1}: at ${box.left}, ${box.top}.`;
  });
  const ARROWS = { ArrowLeft: [-1, 0], ArrowRight: [1, 0], ArrowUp: [0, -1], ArrowDown: [0, 1] };
  canvas.addEventListener("keydown", (event) => {
    const key = event.key;
    if ((event.ctrlKey || event.metaKey) && key.toLowerCase() === "z") {
      event.preventDefault();
      undo();
      return;
    }
    if (event.ctrlKey || event.metaKey || event.altKey) return;
    if (ARROWS[key]) {
      event.preventDefault();
      if (selected < 0) { announce("Select a box first: ] selects the next one."); return; }
      const step = event.shiftKey ? 10 : 1;
      nudge(ARROWS[key][0] * step, ARROWS[key][1] * step);
    } else if (/^[1-9]$/.test(key)) {
      const radio = radios[Number(key) - 1];
      if (radio) {
        event.preventDefault();
        radio.checked = true;
        announce(`Label: ${radio.value}.`);
      }
    } else if (key === "n" || key === "N") {
      event.preventDefault();
      const { w, h } = natural();
      const [bw, bh] = [Math.max(Math.round(w / 4), 1), Math.max(Math.round(h / 4), 1)];
      addBox(Math.round((w - bw) / 2), Math.round((h - bh) / 2), bw, bh);
    } else if (key === "]" || key === "[") {
      event.preventDefault();
      select(selected + (key === "]" ? 1 : -1));
    } else if (key === "Delete" || key === "Backspace") {
      event.preventDefault();
      if (selected >= 0) deleteBox(selected);
    } else if (key === "u" || key === "U") {
      event.preventDefault();
      undo();
    } else if (key === "r" || key === "R") {
      event.preventDefault();
      resizing = !resizing;
      lastChange = null;
      arrowMode.textContent = resizing ? "resize" : "move";
      announce(resizing ? "Arrows resize the box." : "Arrows move the box.");
    } else if (key === "l" || key === "L") {
      event.preventDefault();
      change("relabel", (boxes) => {
        const box = boxes[selected];
        if (!box) return undefined;
        box.label = currentLabel();
        return `Box ${selected + 1} is now ${box.label}.`;
      });
    } else if (key === "Escape") {
      selected = -1;
      render();
      announce("No box selected.");
    }
  });

  list.addEventListener("click", (event) => {
    const button = event.target.closest("button");
    if (!button) return;
    const index = Number(button.dataset.index);
    if (button.classList.contains("box-delete")) deleteBox(index); else select(index);
  });
  undoButton.addEventListener("click", undo);
  document.getElementById("annotator-clear").addEventListener("click", () => change("clear", (boxes, value) => {
    if (!boxes.length) return undefined;
    value.annotations = value.annotations.filter((a) => !(a && a.type === "box"));
    selected = -1;
    return "All boxes removed.";
  }));
  editor.addEventListener("input", () => { lastChange = null; render(); });
  whenSized(image, render);
  render();
})();

// The read-only page of a completed task: the boxes that were sent, drawn on the image.
(() => {
  const image = document.getElementById("done-image");
  const canvas = document.getElementById("done-canvas");
  const sent = document.getElementById("done-response");
  if (!image || !canvas || !sent) return;
  let boxes = [];
  try {
    const value = JSON.parse(sent.textContent);
    boxes = Array.isArray(value.annotations) ? value.annotations.filter((a) => a && a.type === "box") : [];
  } catch (_) { /* nothing to draw */ }
  const order = [...new Set(boxes.map((b) => b.label))];
  const colourOf = (label) => swatchColour(order.indexOf(label) % 10);
  whenSized(image, () => drawBoxes(canvas, image, boxes, colourOf, -1, null));
})();

// An attachment image that fails to load (a missing object, an expired signed link) says so
// and fills in the reason for reporting the task, instead of leaving a broken image.
(() => {
  const image = document.querySelector("img.attachment-image");
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
