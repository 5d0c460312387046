// The Test call page's microphone, on the browser's audio thread (AudioWorklet).
// It only mixes the input to mono and hands it to the page in batches of 2048
// samples (~45 ms): one message per 128-sample render quantum would flood the
// page's thread. Resampling to 16 kHz and the WAV are done by app.js at the end.
class MicCapture extends AudioWorkletProcessor {
  constructor() {
    super();
    this.batch = new Float32Array(2048);
    this.filled = 0;
  }

  process(inputs) {
    var channels = inputs[0];
    if (!channels || channels.length === 0) { return true; }
    var frames = channels[0].length;
    for (var i = 0; i < frames; i++) {
      var sum = 0;
      for (var c = 0; c < channels.length; c++) { sum += channels[c][i]; }
      this.batch[this.filled++] = sum / channels.length;
      if (this.filled === this.batch.length) {
        this.port.postMessage(this.batch, [this.batch.buffer]);  // handed over, not copied
        this.batch = new Float32Array(2048);
        this.filled = 0;
      }
    }
    return true;
  }
}

registerProcessor("mic-capture", MicCapture);
