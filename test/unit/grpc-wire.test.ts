// The gRPC port's check of a ModelInferRequest's wire bytes before protobufjs decodes them:
// within the bounds it says nothing; too many inputs, outputs, raw entries, parameters, shape
// dimensions or contents elements, and bytes that are not protobuf, are refused with the bound
// named, without decoding anything.

import t from 'tap';
import fc from 'fast-check';
import { GRPC_WIRE_LIMITS, wireRefusal } from '../../packages/agent/dist/serve/grpc-wire.js';

// A small protobuf writer: enough for the fields the check reads.
const varint = (n: number): number[] => {
  const out: number[] = [];
  do {
    let byte = n % 128;
    n = Math.floor(n / 128);
    if (n > 0) byte |= 0x80;
    out.push(byte);
  } while (n > 0);
  return out;
};
const field = (num: number, bytes: number[] | Uint8Array): number[] => [...varint(num * 8 + 2), ...varint(bytes.length), ...bytes];
const str = (num: number, s: string) => field(num, [...Buffer.from(s)]);
const packed = (num: number, values: number[]) => field(num, values.flatMap(varint));
const param = (num: number, key: string) => field(num, [...str(1, key), ...field(2, [...varint(1 * 8 + 0), 1])]);
const input = (o: { shape?: number[]; params?: number; contents?: number[] } = {}) =>
  field(5, [...str(1, 'x'), ...str(2, 'FP32'), ...packed(3, o.shape ?? [1, 4]), ...Array.from({ length: o.params ?? 0 }, (_, i) => param(4, `p${i}`)).flat(), ...(o.contents ? field(5, o.contents) : [])]);
const request = (...parts: number[][]) => Uint8Array.from([...str(1, 'model'), ...parts.flat()]);

t.test('a request within the bounds passes', async (t) => {
  t.equal(wireRefusal(request(input(), field(7, new Uint8Array(16)))), undefined, 'one input, raw contents');
  t.equal(wireRefusal(request(input({ shape: [1, 2, 3], params: 3, contents: packed(2, [1, 2, 3, 4, 5, 6]) }))), undefined, 'int contents');
  t.equal(wireRefusal(request(...Array.from({ length: 64 }, () => input()))), undefined, '64 inputs');
  t.equal(wireRefusal(new Uint8Array(0)), undefined, 'an empty message (every field its default)');
});

t.test('past a bound, refused and named', async (t) => {
  const refused = (bytes: Uint8Array, what: RegExp, limits = GRPC_WIRE_LIMITS) => t.match(wireRefusal(bytes, limits), what, what.source);
  refused(request(...Array.from({ length: 65 }, () => input())), /inputs: more than 64/);
  refused(request(...Array.from({ length: 65 }, () => field(6, str(1, 'y')))), /requested outputs: more than 64/);
  refused(request(...Array.from({ length: 65 }, () => field(7, [0]))), /raw_input_contents entries: more than 64/);
  refused(request(...Array.from({ length: 65 }, (_, i) => param(4, `k${i}`))), /request parameters: more than 64/);
  refused(request(input({ params: 65 })), /parameters of an input: more than 64/);
  refused(request(field(6, Array.from({ length: 65 }, (_, i) => param(2, `k${i}`)).flat())), /parameters of an output: more than 64/);
  refused(request(input({ shape: Array.from({ length: 17 }, () => 1) })), /dimensions of an input's shape: more than 16/);
  refused(request(input({ contents: packed(2, Array.from({ length: 11 }, () => 1)) })), /elements of an input's contents/, { ...GRPC_WIRE_LIMITS, contents: 10 });
  refused(request(input({ contents: field(6, new Uint8Array(44)) })), /elements of an input's contents/, { ...GRPC_WIRE_LIMITS, contents: 10 });
  refused(request(input({ contents: Array.from({ length: 11 }, () => field(8, [])).flat() })), /elements of an input's contents/, { ...GRPC_WIRE_LIMITS, contents: 10 });
  // The attack the check is for: millions of empty entries in a few MB.
  const empties = new Uint8Array(4 * 1024 * 1024);
  for (let i = 0; i < empties.length; i += 2) empties.set([5 * 8 + 2, 0], i);
  refused(empties, /inputs: more than 64/);
});

t.test('bytes that are not protobuf are refused, never thrown', async (t) => {
  t.match(wireRefusal(Uint8Array.from([...str(1, 'm').slice(0, 2)])), /runs past the end/);
  t.match(wireRefusal(Uint8Array.from([0x0b])), /wire type 3/);
  t.match(wireRefusal(Uint8Array.from([0x08, 0x80])), /ends inside a number/);
  t.match(wireRefusal(Uint8Array.from([0x08, ...new Array(11).fill(0x80), 1])), /longer than 10 bytes/);
  fc.assert(
    fc.property(fc.uint8Array({ maxLength: 300 }), (bytes) => {
      const why = wireRefusal(bytes);
      return why === undefined || why.startsWith('the request is refused before decoding: ');
    }),
    { numRuns: 2000 },
  );
  t.pass('random bytes: an answer every time');
});
