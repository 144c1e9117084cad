import assert from 'node:assert/strict';
import { test } from 'node:test';
import { Harness } from '@partita/processor/testing';
import Shout from './processor.js';

test('shouts and rejects empty values', () => {
  const h = new Harness(Shout, [['suffix', '?']]);
  const [a, b] = h.run([{ key: 'a', value: 'hi' }, { key: 'b', value: '' }]);
  assert.equal(a.outputs[0].valueString(), 'HI?');
  assert.equal(b.rejected, 'empty value');
});
