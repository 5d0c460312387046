// Small helpers for the htmx enhancements (no inline scripts: the CSP forbids them).
// htmx does not swap error answers: show their text in the notice area instead,
// so a refused change (expired form, lost session) never fails silently.
document.addEventListener("htmx:responseError", function (event) {
  var flash = document.getElementById("flash");
  var xhr = event.detail.xhr;
  if (!flash || !xhr) { return; }
  var type = xhr.getResponseHeader("content-type") || "";
  flash.textContent = type.indexOf("text/plain") === 0 ? xhr.responseText : (xhr.status + " " + xhr.statusText);
  flash.hidden = false;
});

// --- Test call: speak instead of typing -------------------------------------------------
// "Speak" records the staff member's microphone (getUserMedia + an AudioWorklet,
// mic-worklet.js) until they press again, pause for ~1.2 s after speaking, or
// reach 20 s; the clip is resampled here to 16 kHz mono 16-bit (band-limited:
// plain decimation would fold everything above 8 kHz into the speech band as
// aliasing) and posted as a WAV to the running test call. The answer is the
// conversation panel, drawn by the server like after a typed turn. Every sentence
// shown comes from the page's data-* attributes, in the staff's language.
(function () {
  "use strict";
  var RATE = 16000;           // what the box's VAD and recognizer take
  var MAX_S = 20;             // the core refuses longer turns, as a phone turn is cut at 20 s
  var PAUSE_S = 1.2;          // silence after speech that ends the recording
  var SPEECH_RMS = 0.01;      // about -40 dBFS: quieter is not someone speaking into the microphone
  var POLL_MS = 1000;         // how often to ask whether the recognizer has loaded
  var recording = null;       // the one recording in progress

  function statusLine(panel) { return panel && panel.querySelector(".speak-status"); }

  // One sentence under the buttons: a state ("listening"), or why the microphone cannot be used.
  function show(panel, key, extra, bad) {
    var line = statusLine(panel);
    if (!line) { return; }
    var text = key ? (line.getAttribute("data-" + key) || "") : "";
    if (extra) { text = text ? text + " " + extra : extra; }
    line.textContent = text;
    line.hidden = !text;
    line.classList.toggle("bad", !!bad);
  }

  // Why the microphone cannot be used here, or null.
  function micProblem() {
    // Browsers offer getUserMedia only in a secure context: https, or http://localhost / 127.0.0.1.
    if (!window.isSecureContext) { return "insecure"; }
    if (!navigator.mediaDevices || !navigator.mediaDevices.getUserMedia || !window.AudioContext ||
        !window.AudioWorkletNode) { return "unsupported"; }
    return null;
  }

  // After the page loads and after every swap of the panel: show the button, or say why not.
  function setUp() {
    if (recording && !document.body.contains(recording.button)) {
      finish(recording, false);  // the panel was redrawn (a typed turn) while recording: drop the clip
    }
    var button = document.querySelector("[data-speak]");
    if (!button) { return; }
    button.hidden = false;
    var problem = micProblem();
    if (problem) {
      button.disabled = true;
      show(button.closest("#test-call"), problem, "", true);
    }
  }

  document.addEventListener("DOMContentLoaded", setUp);
  document.addEventListener("htmx:afterSettle", setUp);
  document.addEventListener("click", function (event) {
    var button = event.target.closest ? event.target.closest("[data-speak]") : null;
    if (!button || button.disabled) { return; }
    event.preventDefault();
    if (recording) { recording.stop(true); } else { start(button); }
  });

  function token(panel) {
    var field = panel.querySelector("input[name=csrf]");
    return field ? field.value : "";
  }

  function post(url, panel, body, type) {
    var headers = {"X-CSRF-Token": token(panel), "HX-Request": "true"};
    if (type) { headers["Content-Type"] = type; }
    return fetch(url, {method: "POST", headers: headers, body: body || null, credentials: "same-origin"});
  }

  function start(button) {
    var panel = button.closest("#test-call");
    var problem = micProblem();
    if (problem) { show(panel, problem, "", true); return; }
    var context;
    try {
      context = new AudioContext();  // made inside the click: browsers start audio only on a gesture
    } catch (err) {
      show(panel, "unsupported", "", true);
      return;
    }
    var rec = {
      button: button, panel: panel, context: context, stream: null, chunks: [], samples: 0,
      heard: false, quietS: 0, floor: null, done: false, loading: false, failed: false, sent: false, answered: false
    };
    rec.stop = function (send) { finish(rec, send); };
    recording = rec;
    button.setAttribute("aria-pressed", "true");
    button.classList.add("on");
    button.textContent = button.getAttribute("data-stop-label");
    show(panel, "listening");
    prepare(rec);
    navigator.mediaDevices.getUserMedia({audio: {channelCount: 1, echoCancellation: true, noiseSuppression: true,
                                                 autoGainControl: true}})
      .then(function (stream) {
        rec.stream = stream;
        if (rec.done) { release(rec); return null; }
        return context.audioWorklet.addModule("/static/mic-worklet.js").then(function () {
          if (rec.done) { release(rec); return; }
          var source = context.createMediaStreamSource(stream);
          var node = new AudioWorkletNode(context, "mic-capture", {numberOfOutputs: 0});
          node.port.onmessage = function (event) { take(rec, event.data); };
          source.connect(node);
          rec.source = source;
          rec.node = node;
          return context.resume();
        });
      })
      .catch(function (err) {
        var name = err && err.name;
        var key = (name === "NotAllowedError" || name === "SecurityError") ? "denied"
          : (name === "NotFoundError" || name === "OverconstrainedError") ? "no-mic" : "mic-failed";
        finish(rec, false);
        show(panel, key, "", true);
      });
  }

  // Ask the core to get its recognizer ready while the person speaks; the first
  // time on a box without models it loads, and the page says so.
  function prepare(rec) {
    post(rec.button.getAttribute("data-hearing"), rec.panel)
      .then(function (answer) {
        if (answer.ok) { return answer.json(); }
        return answer.text().then(function (text) { return {state: "failed", message: safeJson(text).error || text}; });
      })
      .then(function (answer) {
        if (rec.answered || (rec.done && !rec.sent)) { return; }  // over, or given up
        rec.loading = answer.state === "loading";
        if (answer.state === "failed") {
          // Nothing could hear the clip: stop now rather than after the person has spoken.
          rec.failed = true;
          finish(rec, false);
          show(rec.panel, null, answer.message, true);
          return;
        }
        showState(rec);
        if (rec.loading) { window.setTimeout(function () { prepare(rec); }, POLL_MS); }
      })
      .catch(function () { /* the recording goes on; the answer to the clip will say what is wrong */ });
  }

  function showState(rec) {
    if (rec.failed) { return; }
    var line = statusLine(rec.panel);
    var loading = rec.loading && line ? line.getAttribute("data-loading") : "";
    show(rec.panel, rec.done ? "recognising" : "listening", loading);
  }

  function take(rec, chunk) {
    if (rec.done) { return; }
    rec.chunks.push(chunk);
    rec.samples += chunk.length;
    var sum = 0;
    for (var i = 0; i < chunk.length; i++) { sum += chunk[i] * chunk[i]; }
    var rms = Math.sqrt(sum / chunk.length);
    // The quietest moment so far is the room's noise: speech is well above it.
    rec.floor = rec.floor === null ? rms : Math.min(rec.floor, rms);
    if (rms > Math.max(SPEECH_RMS, rec.floor * 4)) {
      rec.heard = true;
      rec.quietS = 0;
    } else if (rec.heard) {
      rec.quietS += chunk.length / rec.context.sampleRate;
    }
    if ((rec.heard && rec.quietS >= PAUSE_S) || rec.samples >= MAX_S * rec.context.sampleRate) {
      finish(rec, true);
    }
  }

  function release(rec) {
    if (rec.source) { rec.source.disconnect(); }
    if (rec.stream) { rec.stream.getTracks().forEach(function (track) { track.stop(); }); }
    if (rec.context && rec.context.state !== "closed") { rec.context.close(); }
  }

  function finish(rec, send) {
    if (rec.done) { return; }
    rec.done = true;
    if (recording === rec) { recording = null; }
    release(rec);
    var button = rec.button;
    button.setAttribute("aria-pressed", "false");
    button.classList.remove("on");
    button.textContent = button.getAttribute("data-label");
    if (!send) { return; }
    var pcm = to16k(joined(rec.chunks, rec.samples), rec.context.sampleRate);
    if (pcm.length > MAX_S * RATE) { pcm = pcm.subarray(0, MAX_S * RATE); }
    if (pcm.length === 0) { show(rec.panel, "nothing", "", true); return; }
    rec.sent = true;
    button.disabled = true;
    showState(rec);
    post(button.getAttribute("data-hear"), rec.panel, wav(pcm), "audio/wav")
      .then(function (answer) {
        var type = answer.headers.get("content-type") || "";
        return answer.text().then(function (text) {
          rec.answered = true;
          if (type.indexOf("text/html") === 0) { swap(rec.panel, text); return; }
          // Not the panel: a lost session (JSON) or a refused token (plain text).
          button.disabled = false;
          show(rec.panel, null, type.indexOf("application/json") === 0 ? (safeJson(text).error || text) : text, true);
        });
      })
      .catch(function () {
        rec.answered = true;
        button.disabled = false;
        show(rec.panel, "send-failed", "", true);
      });
  }

  function safeJson(text) {
    try { return JSON.parse(text) || {}; } catch (err) { return {}; }
  }

  function swap(panel, html) {
    var holder = document.createElement("div");
    holder.innerHTML = html;
    var fresh = holder.querySelector("#test-call");
    if (!fresh) { return; }
    panel.replaceWith(fresh);
    if (window.htmx) { window.htmx.process(fresh); }  // its forms post through htmx again
    setUp();
    var input = fresh.querySelector("#f-say");
    if (input) { input.focus(); }
  }

  function joined(chunks, total) {
    var out = new Float32Array(total);
    var at = 0;
    chunks.forEach(function (chunk) { out.set(chunk, at); at += chunk.length; });
    return out;
  }

  // Band-limited resampling to 16 kHz: a Blackman-windowed sinc low-pass at 0.9 of
  // the lower Nyquist frequency, evaluated at each output instant (64 precomputed
  // fractional phases, each normalised to unity gain).
  function to16k(input, rate) {
    var ratio = rate / RATE;
    var band = 0.9 * Math.min(rate, RATE) / rate;  // twice the cut-off, in cycles per input sample
    var half = Math.ceil(8 / band);               // 8 zero crossings of the sinc on each side
    var phases = 64;
    var taps = 2 * half;
    var table = new Float32Array(phases * taps);
    for (var p = 0; p < phases; p++) {
      var sum = 0;
      for (var k = 0; k < taps; k++) {
        var tau = (k - half + 1) - p / phases;  // distance from the output instant, in input samples
        var x = band * tau;
        var sinc = x === 0 ? 1 : Math.sin(Math.PI * x) / (Math.PI * x);
        var w = tau / half;
        var window = Math.abs(w) >= 1 ? 0 : 0.42 + 0.5 * Math.cos(Math.PI * w) + 0.08 * Math.cos(2 * Math.PI * w);
        table[p * taps + k] = sinc * window;
        sum += sinc * window;
      }
      for (k = 0; k < taps; k++) { table[p * taps + k] /= sum; }
    }
    var count = Math.floor(input.length / ratio);
    var out = new Int16Array(count);
    for (var n = 0; n < count; n++) {
      var t = n * ratio;
      var i = Math.floor(t);
      var phase = Math.round((t - i) * phases);
      if (phase === phases) { phase = 0; i += 1; }
      var acc = 0;
      var base = i - half + 1;
      var row = phase * taps;
      for (k = 0; k < taps; k++) {
        var j = base + k;
        if (j >= 0 && j < input.length) { acc += input[j] * table[row + k]; }
      }
      var s = Math.round(acc * 32768);
      out[n] = s > 32767 ? 32767 : (s < -32768 ? -32768 : s);
    }
    return out;
  }

  // A canonical 44-byte WAV header (PCM, mono, 16 kHz, 16-bit) and the samples, little-endian.
  function wav(pcm) {
    var bytes = new DataView(new ArrayBuffer(44 + pcm.length * 2));
    function text(at, value) { for (var c = 0; c < value.length; c++) { bytes.setUint8(at + c, value.charCodeAt(c)); } }
    text(0, "RIFF");
    bytes.setUint32(4, 36 + pcm.length * 2, true);
    text(8, "WAVE");
    text(12, "fmt ");
    bytes.setUint32(16, 16, true);
    bytes.setUint16(20, 1, true);          // PCM
    bytes.setUint16(22, 1, true);          // mono
    bytes.setUint32(24, RATE, true);
    bytes.setUint32(28, RATE * 2, true);   // bytes per second
    bytes.setUint16(32, 2, true);          // bytes per frame
    bytes.setUint16(34, 16, true);         // bits per sample
    text(36, "data");
    bytes.setUint32(40, pcm.length * 2, true);
    for (var n = 0; n < pcm.length; n++) { bytes.setInt16(44 + 2 * n, pcm[n], true); }
    return bytes.buffer;  // posted as is, with Content-Type: audio/wav
  }
})();
