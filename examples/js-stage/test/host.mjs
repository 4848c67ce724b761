// The host's `log` and `now-ms`, for native tests: the clock is settable.
export let now = 0n;
export function setNow(ms) {
  now = BigInt(ms);
}
export function log() {}
export function nowMs() {
  return now;
}
