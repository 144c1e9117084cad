// The cases of the Rust processor's tests (processors/csv-to-json), run on
// the JavaScript port.

import assert from 'node:assert/strict';
import { test } from 'node:test';

import { Harness } from '../../../guest-sdk/js/testing.js';
import CsvToJson from './processor.js';

const harness = (config) => new Harness(CsvToJson, config);
const jsonOf = (h, line) => h.runOne({ value: line }).outputs[0].valueString();
function rejection(h, line) {
  const r = h.runOne({ value: line });
  assert.ok(r.rejected !== undefined, `expected a rejection for ${line}, got ${JSON.stringify(r)}`);
  return r.rejected;
}

test('parses a line into an object in column order and keeps the rest', () => {
  const h = harness([['columns', 'id, name, amount'], ['numeric', 'amount']]);
  const r = h.runOne({ key: 'order-7', value: '7,Ada Lovelace,12.50\r\n', headers: [['src', 'legacy']], timestamp: 42 });
  const o = r.outputs[0];
  assert.equal(o.valueString(), '{"id":"7","name":"Ada Lovelace","amount":12.50}');
  assert.deepEqual([o.keyString(), o.timestamp, o.output], ['order-7', 42, 'default']);
  assert.equal(o.headers[0][0], 'src');
});

test('quoted fields hold delimiters, quotes and line breaks', () => {
  const h = harness([['columns', 'a,b,c']]);
  assert.equal(jsonOf(h, '"x, y","say ""hi""",""""'), '{"a":"x, y","b":"say \\"hi\\"","c":"\\""}');
  assert.equal(jsonOf(h, '"two\nlines",,""'), '{"a":"two\\nlines","b":"","c":""}');
  assert.equal(jsonOf(h, 'in"side,b,c'), '{"a":"in\\"side","b":"b","c":"c"}');
});

test('strings are escaped as JSON', () => {
  assert.equal(jsonOf(harness([['columns', 't']]), 'back\\slash\ttab\u0001é€'), '{"t":"back\\\\slash\\ttab\\u0001é€"}');
  assert.equal(jsonOf(harness([['columns', 'we"ird']]), 'v'), '{"we\\"ird":"v"}');
});

test('other delimiters', () => {
  assert.equal(jsonOf(harness([['columns', 'a,b'], ['delimiter', ';']]), '1,5;x'), '{"a":"1,5","b":"x"}');
  assert.equal(jsonOf(harness([['columns', 'a,b'], ['delimiter', 'tab']]), '1\t"q"'), '{"a":"1","b":"q"}');
  assert.equal(jsonOf(harness([['columns', 'a,b'], ['delimiter', '→']]), '1→2'), '{"a":"1","b":"2"}');
  assert.equal(jsonOf(harness([['columns', 'a,b'], ['delimiter', '😀']]), '1😀"2"'), '{"a":"1","b":"2"}');
});

test('numbers keep their digits and become valid JSON', () => {
  const h = harness([['columns', 'n'], ['numeric', 'n'], ['delimiter', ';']]);
  for (const [input, json] of [
    ['12', '12'],
    ['+007.50', '7.50'],
    [' -0.5 ', '-0.5'],
    ['.5', '0.5'],
    ['3.', '3'],
    ['000', '0'],
    ['1e3', '1e3'],
    ['-2.5E-03', '-2.5e-03'],
    ['123456789012345678901234567890', '123456789012345678901234567890'],
    ['', 'null'],
    ['   ', 'null'],
  ]) {
    assert.equal(jsonOf(h, input), `{"n":${json}}`, `input \`${input}\``);
  }
  for (const bad of ['12,5', 'abc', '1e', '--1', '1.2.3', '.', '+', '0x10', 'inf', 'NaN', '1 2']) {
    assert.equal(rejection(h, bad), `column \`n\` is not a number: \`${bad}\``, `input \`${bad}\``);
  }
});

test('malformed lines are rejected with the problem', () => {
  const h = harness([['columns', 'id,name,amount'], ['numeric', 'amount']]);
  assert.equal(rejection(h, '1,Ada'), 'expected 3 fields, found 2');
  assert.equal(rejection(h, '1,Ada,3,4'), 'expected 3 fields, found 4');
  assert.equal(rejection(h, '1,"Ada,3'), 'unterminated quote in field 2');
  assert.equal(rejection(h, '1,"Ada"x,3'), 'unexpected character after the closing quote of field 2');
  assert.equal(rejection(h, new Uint8Array([0x31, 0x2c, 0xff, 0x2c, 0x33])), 'value is not UTF-8: invalid byte at offset 2');
  assert.equal(rejection(h, '1,Ada,twelve'), 'column `amount` is not a number: `twelve`');
  assert.equal(rejection(h, `1,Ada,${'x'.repeat(50)}`), `column \`amount\` is not a number: \`${'x'.repeat(40)}\``);
  const one = harness([['columns', 'only']]);
  assert.equal(rejection(one, 'a,b'), 'expected 1 field, found 2');
  assert.equal(one.runOne({ key: 'k' }).rejected, 'record has no value');
});

test('skip_header drops the header line only', () => {
  const h = harness([['columns', 'id,amount'], ['numeric', 'amount'], ['skip_header', 'true']]);
  const rs = h.run([{ value: 'id,amount\n' }, { value: '"id",amount' }, { value: '1,2' }]);
  assert.deepEqual(rs[0], { outputs: [] });
  assert.deepEqual(rs[1], { outputs: [] });
  assert.equal(rs[2].outputs[0].valueString(), '{"id":"1","amount":2}');
  assert.equal(rejection(harness([['columns', 'id,amount'], ['numeric', 'amount']]), 'id,amount'), 'column `amount` is not a number: `amount`');
});

test('bad configuration is refused naming the key', () => {
  const err = (config) => {
    try {
      new Harness(CsvToJson, config);
    } catch (e) {
      return e.message;
    }
    return 'accepted';
  };
  assert.equal(err([]), 'config key `columns`: is required but missing');
  assert.equal(err([['columns', '']]), 'config key `columns`: is required but empty');
  assert.equal(err([['columns', ' , ']]), 'config key `columns`: lists no column');
  assert.equal(err([['columns', 'a,b,a']]), 'config key `columns`: column `a` is listed twice');
  assert.equal(err([['columns', 'a,b'], ['numeric', 'c']]), 'config key `numeric`: `c` is not one of the columns');
  assert.equal(err([['columns', 'a'], ['delimiter', ';;']]), 'config key `delimiter`: must be one character (or `tab`), found `;;`');
  assert.equal(err([['columns', 'a'], ['delimiter', '"']]), 'config key `delimiter`: `"` cannot be a delimiter');
  assert.equal(err([['columns', 'a'], ['skip_header', 'yes']]), 'config key `skip_header`: cannot parse `yes`: provided string was not `true` or `false`');
  assert.equal(
    err([['columns', 'a'], ['colums', 'b']]),
    'config key `colums`: unknown key (known keys: columns, delimiter, numeric, skip_header)',
  );
});
