// js-faults: a JavaScript stage that misbehaves on calls to `echo` as its
// config says ({"fail": "garbage" | "loop" | "alloc" | "error"}), so the
// tests can prove Helio fails closed on a JavaScript stage too.
let mode = 'none';

function configure(configJson) {
  mode = JSON.parse(configJson).fail ?? 'none';
}

function evaluate(call) {
  if (call.tool() === 'echo') {
    if (mode === 'garbage') return { tag: 'no-such-verdict' };
    if (mode === 'loop') for (;;) {}
    if (mode === 'alloc') {
      const chunks = [];
      for (;;) chunks.push(new Uint8Array(1 << 20).fill(1));
    }
    if (mode === 'error') throw { message: 'js-faults was told to report an error' };
  }
  return { tag: 'allow', val: { action: 'allow', explanation: 'js-faults', redact: [], observe: false } };
}

export const stage = { configure, evaluate };
