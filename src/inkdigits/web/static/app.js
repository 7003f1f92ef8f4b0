// inkdigits page: draw a digit (mouse, touch, pen) and see the reading update as you draw;
// or upload a photo and see what was read, boxed on the image. Plain browser JavaScript.
"use strict";

const pad = document.getElementById("pad");
const ctx = pad.getContext("2d");
const seen = document.getElementById("seen").getContext("2d");
const strokes = [];
let current = null;
let inFlight = false;
let dirty = false;

// ---- drawing -----------------------------------------------------------------------------

function penWidth() { return pad.width / 14; }  // about MNIST's stroke for a full-height digit

function redraw() {
  ctx.fillStyle = "#fff";
  ctx.fillRect(0, 0, pad.width, pad.height);
  ctx.strokeStyle = "#000";
  ctx.lineCap = "round";
  ctx.lineJoin = "round";
  ctx.lineWidth = penWidth();
  for (const stroke of strokes) {
    ctx.beginPath();
    stroke.forEach(([x, y], i) => (i ? ctx.lineTo(x, y) : ctx.moveTo(x, y)));
    if (stroke.length === 1) ctx.lineTo(stroke[0][0] + 0.1, stroke[0][1]);
    ctx.stroke();
  }
}

function point(event) {
  const rect = pad.getBoundingClientRect();
  return [(event.clientX - rect.left) * (pad.width / rect.width), (event.clientY - rect.top) * (pad.height / rect.height)];
}

pad.addEventListener("pointerdown", (event) => {
  event.preventDefault();
  pad.setPointerCapture(event.pointerId);
  current = [point(event)];
  strokes.push(current);
  redraw();
  schedule();
});
pad.addEventListener("pointermove", (event) => {
  if (!current) return;
  for (const e of event.getCoalescedEvents ? event.getCoalescedEvents() : [event]) current.push(point(e));
  redraw();
  schedule();
});
for (const type of ["pointerup", "pointercancel"]) {
  pad.addEventListener(type, () => { current = null; schedule(); });
}

function undo() { strokes.pop(); redraw(); strokes.length ? schedule() : showEmpty(); }
function clearPad() { strokes.length = 0; redraw(); showEmpty(); }
document.getElementById("undo").addEventListener("click", undo);
document.getElementById("clear").addEventListener("click", clearPad);
document.addEventListener("keydown", (event) => {
  if ((event.ctrlKey || event.metaKey) && event.key === "z") { event.preventDefault(); undo(); }
  if (event.key === "Escape") clearPad();
});

// ---- live prediction: one request in flight, the latest drawing always read last ----------

function schedule() {
  dirty = true;
  if (!inFlight) send();
}

function send() {
  if (!strokes.length) { dirty = false; return; }
  dirty = false;
  inFlight = true;
  pad.toBlob(async (blob) => {
    try {
      const response = await fetch("/api/predict?include=model_input", { method: "POST", body: blob,
                                                                            headers: { "Content-Type": "image/png" } });
      const answer = await response.json();
      if (strokes.length) showAnswer(answer);
    } catch (error) {
      showMessage("The server did not answer; is it still running?");
    } finally {
      inFlight = false;
      if (dirty) send();
    }
  }, "image/png");
}

// ---- showing results -----------------------------------------------------------------------

const result = document.getElementById("result");
const digitEl = document.getElementById("digit");
const confidenceEl = document.getElementById("confidence");
const bars = document.getElementById("bars");
for (let d = 0; d < 10; d++) {
  const li = document.createElement("li");
  li.innerHTML = `<span>${d}</span><span class="track"><span class="fill"></span></span><span class="value">0%</span>`;
  bars.appendChild(li);
}

function setBars(probabilities, top) {
  [...bars.children].forEach((li, d) => {
    const p = probabilities ? probabilities[d] : 0;
    li.querySelector(".fill").style.width = `${(p * 100).toFixed(1)}%`;
    li.querySelector(".value").textContent = `${(p * 100).toFixed(0)}%`;
    li.classList.toggle("top", d === top);
  });
}

function drawSeen(pixels) {
  seen.fillStyle = "#000";
  seen.fillRect(0, 0, 112, 112);
  if (!pixels) return;
  const image = seen.createImageData(28, 28);
  pixels.flat().forEach((v, i) => { image.data.set([v, v, v, 255], i * 4); });
  const small = document.createElement("canvas");
  small.width = small.height = 28;
  small.getContext("2d").putImageData(image, 0, 0);
  seen.imageSmoothingEnabled = false;
  seen.drawImage(small, 0, 0, 112, 112);
}

function showEmpty() {
  result.className = "result empty";
  digitEl.textContent = "?";
  confidenceEl.textContent = "Draw a digit";
  setBars(null, -1);
  drawSeen(null);
}

function showMessage(text) {
  result.className = "result rejected";
  digitEl.textContent = "—";
  confidenceEl.textContent = text;
}

function showAnswer(answer) {
  if (answer.digit === undefined || answer.digit === null || answer.rejected) {
    result.className = "result rejected";
    digitEl.textContent = "Not a digit";
    confidenceEl.textContent = answer.reason || answer.error || "";
    setBars(answer.probabilities || null, -1);
    drawSeen(answer.model_input || null);
    return;
  }
  result.className = "result";
  digitEl.textContent = String(answer.digit);
  confidenceEl.textContent = `${(answer.confidence * 100).toFixed(1)}% sure`;
  setBars(answer.probabilities, answer.digit);
  drawSeen(answer.model_input);
}

// ---- photos ------------------------------------------------------------------------------

const fileInput = document.getElementById("file");
const drop = document.getElementById("drop");
const photoStatus = document.getElementById("photo-status");
const photoView = document.getElementById("photo-view");
const photo = document.getElementById("photo");
const boxes = document.getElementById("boxes");

async function readPhoto(file) {
  if (!file) return;
  photoStatus.textContent = `Reading ${file.name}…`;
  boxes.innerHTML = "";
  const url = URL.createObjectURL(file);
  photo.src = url;
  photoView.hidden = false;
  const form = new FormData();
  form.append("image", file, file.name);
  try {
    const response = await fetch("/api/read", { method: "POST", body: form });
    const answer = await response.json();
    await photo.decode().catch(() => {});
    showPhotoReading(answer);
  } catch (error) {
    photoStatus.textContent = "The server did not answer; is it still running?";
  }
}

function showPhotoReading(answer) {
  if (answer.error) {
    photoStatus.textContent = answer.error;
    return;
  }
  if (!answer.lines || !answer.lines.length) {
    photoStatus.textContent = "No number found.";
    return;
  }
  const texts = answer.lines.map((line) => line.text_full);
  photoStatus.textContent = `Read ${texts.join(", ")}.`;
  if (!photo.naturalWidth) return;
  for (const line of answer.lines) {
    for (const digit of line.digits) addBox(digit.box, String(digit.digit), "box");
    if (line.digits.length > 1) addBox(line.box, line.text_full, "box line");
  }
}

function addBox([x, y, w, h], label, className) {
  const box = document.createElement("div");
  box.className = className;
  Object.assign(box.style, {
    left: `${(100 * x) / photo.naturalWidth}%`, top: `${(100 * y) / photo.naturalHeight}%`,
    width: `${(100 * w) / photo.naturalWidth}%`, height: `${(100 * h) / photo.naturalHeight}%`,
  });
  const tag = document.createElement("span");
  tag.textContent = label;
  box.appendChild(tag);
  boxes.appendChild(box);
}

fileInput.addEventListener("change", () => readPhoto(fileInput.files[0]));
drop.addEventListener("keydown", (event) => {
  if (event.key === "Enter" || event.key === " ") { event.preventDefault(); fileInput.click(); }
});
for (const type of ["dragenter", "dragover"]) {
  drop.addEventListener(type, (event) => { event.preventDefault(); drop.classList.add("over"); });
}
for (const type of ["dragleave", "drop"]) {
  drop.addEventListener(type, () => drop.classList.remove("over"));
}
drop.addEventListener("drop", (event) => { event.preventDefault(); readPhoto(event.dataTransfer.files[0]); });

redraw();
showEmpty();
