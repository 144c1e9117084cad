// A JavaScript processor that misbehaves on request, for the tests of limits:
// the record value says what to do.
//   ok     forward the record
//   loop   spin forever (the CPU deadline must stop it)
//   grow   allocate 512 MiB (the memory cap must stop it)
//   throw  throw a TypeError (a bug: the call traps)

import { Reject } from '../../../../../../guest-sdk/js/partita.js';

export default class Misbehave {
  process(record, out) {
    const what = record.valueString();
    if (what === 'ok') {
      out.forward();
    } else if (what === 'loop') {
      let n = 0;
      for (;;) n += 1;
    } else if (what === 'grow') {
      const big = new Uint8Array(512 << 20);
      big.fill(1);
      out.value(String(big[big.length - 1]));
    } else if (what === 'throw') {
      throw new TypeError('a bug in the processor');
    } else {
      throw new Reject(`unknown request \`${what}\``);
    }
  }
}
