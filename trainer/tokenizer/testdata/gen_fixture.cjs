// gen_fixture.cjs writes hf_expected.json: the ids and texts Hugging Face tokenizers gives for
// every case in cases.json, for every tokenizer.json listed there. Run only to regenerate the
// fixture, after `go test ./trainer/tokenizer -run TestHuggingFaceFixture -update`:
//
//   npm install --prefix /tmp/hftok tokenizers@0.23.2
//   NODE_PATH=/tmp/hftok/node_modules node trainer/tokenizer/testdata/gen_fixture.cjs
//
// The npm package `tokenizers` is Hugging Face's official Node binding of the Rust library that
// Python's `tokenizers` and transformers' fast tokenizers wrap (the same code computes the ids);
// it is used because the Python wheel cannot be installed here. The binding has no
// split_special_tokens switch, so "ids_no_special" comes from the same tokenizer.json with its
// special added tokens removed. That equals encode_special_tokens=True as long as no other added
// token overlaps a special one, which holds for these fixtures (and the ids of the remaining
// added tokens do not move, because the specials are listed after them).
'use strict';
const fs = require('fs');
const path = require('path');
const { Tokenizer } = require('tokenizers');

const dir = __dirname;
const cases = JSON.parse(fs.readFileSync(path.join(dir, 'cases.json'), 'utf8'));

// GPT-2's bytes_to_unicode, to name the byte tokens of the decode cases.
const byteChar = {};
{
  const bs = [];
  for (let b = 0x21; b <= 0x7e; b++) bs.push(b);
  for (let b = 0xa1; b <= 0xac; b++) bs.push(b);
  for (let b = 0xae; b <= 0xff; b++) bs.push(b);
  let n = 0;
  for (let b = 0; b < 256; b++) {
    if (bs.includes(b)) byteChar[b] = String.fromCodePoint(b);
    else byteChar[b] = String.fromCodePoint(256 + n++);
  }
}

function idsOf(tok, items) {
  const ids = [];
  for (const it of items) {
    if (it.startsWith('0x')) {
      for (let i = 2; i < it.length; i += 2) {
        const id = tok.tokenToId(byteChar[parseInt(it.slice(i, i + 2), 16)]);
        if (id === null || id === undefined) throw new Error(`no byte token in ${it}`);
        ids.push(id);
      }
    } else if (it.startsWith('#')) {
      ids.push(parseInt(it.slice(1), 10));
    } else {
      const id = tok.tokenToId(it);
      if (id === null || id === undefined) return null; // not in this tokenizer
      ids.push(id);
    }
  }
  return ids;
}

async function main() {
  const pkg = require('tokenizers/package.json');
  const out = { generator: `tokenizers (npm, Hugging Face Rust core) ${pkg.version}`, tokenizers: {} };
  for (const name of cases.tokenizers) {
    const file = path.join(dir, name, 'tokenizer.json');
    const json = fs.readFileSync(file, 'utf8');
    const tok = Tokenizer.fromString(json);
    const doc = JSON.parse(json);
    doc.added_tokens = doc.added_tokens.filter((t) => !t.special);
    const plain = Tokenizer.fromString(JSON.stringify(doc));
    const res = { encode: [], decode: [] };
    for (const text of cases.encode) {
      const ids = (await tok.encode(text, null, { addSpecialTokens: false })).getIds();
      const idsNoSpecial = (await plain.encode(text, null, { addSpecialTokens: false })).getIds();
      res.encode.push({
        text,
        ids,
        ids_no_special: idsNoSpecial,
        decoded: await tok.decode(ids, false),
        decoded_skip_special: await tok.decode(ids, true),
      });
    }
    for (const items of cases.decode) {
      const ids = idsOf(tok, items);
      res.decode.push({ items, ids, text: ids === null ? null : await tok.decode(ids, false) });
    }
    out.tokenizers[name] = res;
  }
  // One case per line keeps the file small and its diffs readable.
  const lines = [`{"generator": ${JSON.stringify(out.generator)}, "tokenizers": {`];
  const names = Object.keys(out.tokenizers);
  names.forEach((name, i) => {
    const r = out.tokenizers[name];
    lines.push(` ${JSON.stringify(name)}: {"encode": [`);
    lines.push(r.encode.map((c) => '  ' + JSON.stringify(c)).join(',\n'));
    lines.push(' ], "decode": [');
    lines.push(r.decode.map((c) => '  ' + JSON.stringify(c)).join(',\n'));
    lines.push(' ]}' + (i + 1 < names.length ? ',' : ''));
  });
  lines.push('}}');
  fs.writeFileSync(path.join(dir, 'hf_expected.json'), lines.join('\n') + '\n');
  console.log(`wrote hf_expected.json for ${cases.tokenizers.length} tokenizers`);
}

main().catch((e) => {
  console.error(e);
  process.exit(1);
});
