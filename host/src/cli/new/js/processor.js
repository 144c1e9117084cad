// {{name}}: a Partita processor. It upper-cases each record's value and
// appends the stage's `suffix` (default `!`); a record with an empty value
// is rejected (the host sends it to the stage's dead-letter topic).

import { Reject } from '@partita/processor';

export default class Shout {
  constructor(config) {
    config.checkKeys(['suffix']);
    this.suffix = config.get('suffix') ?? '!';
  }

  process(record, out) {
    const text = record.valueString();
    if (text === '') throw new Reject('empty value');
    // To output `default`, keeping the record's key, headers and timestamp.
    out.value(text.toUpperCase() + this.suffix);
  }
}
